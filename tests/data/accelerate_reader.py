"""Run under `accelerate launch`: each rank reads one epoch of a local parquet source through
TrainStream (the streaming path) and writes what it saw to OUT/rank{R}.json.

    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 \\
        tests/data/accelerate_reader.py --path DIR --out OUT --batches N
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import torch
from accelerate import Accelerator

from distgan.config import load_config
from distgan.data import TrainStream


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--path", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--batches", type=int, required=True)
    parser.add_argument("--global-batch", type=int, default=14)
    args = parser.parse_args()
    accelerator = Accelerator()
    cfg = load_config(
        "configs/celeba_dcgan.yaml",
        [
            "data.source=parquet",
            f"data.path={args.path}",
            f"data.batch_size={args.global_batch}",
            "data.num_workers=0",
        ],
        world_size=accelerator.num_processes,
    )
    stream = TrainStream(cfg, accelerator.process_index, accelerator.num_processes)
    keys, shapes = [], set()
    for _ in range(args.batches):
        images = next(stream).images
        shapes.add(tuple(images.shape))
        pixels = ((images + 1) * 127.5).round().to(torch.uint8).numpy()
        keys += [hashlib.sha1(p.tobytes()).hexdigest() for p in pixels]
    record = {
        "rank": accelerator.process_index,
        "world_size": accelerator.num_processes,
        "keys": keys,
        "shapes": sorted(shapes),
        "state": stream.state_dict(),
        "describe": stream.describe(),
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / f"rank{accelerator.process_index}.json").write_text(json.dumps(record))
    accelerator.wait_for_everyone()


if __name__ == "__main__":
    main()
