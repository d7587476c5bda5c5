"""Small-data run: does DiffAugment help a DCGAN trained on 1,000 MNIST digits?

    python benchmarks/small_data.py --steps 1000 --seeds 3 --out benchmarks/results/cpu2_small_data.json

The embedded 5,000-digit MNIST sample (shuffled, real digits) is cut to its first 1,000 rows (about
100 per class), written as a local parquet file in the Hub's schema, and the quickstart DCGAN is
trained on it with augment.policy=none and =diffaugment (translation, color, cutout), seeds 0..N-1,
the same steps. Each EMA generator is scored on the shipped MNIST classifier's features against
2,000 HELD-OUT digits (rows 1,000-2,999, never trained on): FD, class coverage and KL of the class
histogram (distgan.metrics). One torch thread per run; wall times on a shared machine are inflated.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import torch

from distgan.bench.runs import reset_accelerate
from distgan.config import load_config
from distgan.data import real_examples
from distgan.data.sources import EMBEDDED_PATH
from distgan.generation import load_generator
from distgan.metrics import evaluate_generator
from distgan.trainer import train

TRAIN_DIGITS = 1000
HELD_OUT = 2000
SAMPLE_SEED = 20_000


def cut_dataset(path: Path) -> None:
    table = pq.read_table(EMBEDDED_PATH)
    pq.write_table(table.slice(0, TRAIN_DIGITS), path)


def held_out_digits():
    cfg = load_config("configs/quickstart.yaml")
    batch = real_examples(cfg, TRAIN_DIGITS + HELD_OUT)
    batch.images, batch.labels = batch.images[TRAIN_DIGITS:], batch.labels[TRAIN_DIGITS:]
    return batch


def run(policy: str, seed: int, steps: int, data: Path, held_out) -> dict:
    with tempfile.TemporaryDirectory(prefix="distgan_small_") as run_dir:
        cfg = load_config(
            "configs/quickstart.yaml",
            [
                "data.source=parquet",
                f"data.path={data}",
                "data.label_column=label",
                f"augment.policy={policy}",
                f"train.steps={steps}",
                f"train.seed={seed}",
                f"train.out_dir={run_dir}",
                "log.every=250",
                "log.sample_every=0",
                "checkpoint.every=0",
            ],
        )
        reset_accelerate()
        start = time.perf_counter()
        assert train(cfg, resume="never") == 0
        wall = time.perf_counter() - start
        generator = load_generator(run_dir)
        with torch.no_grad():
            scores = evaluate_generator(
                generator, cfg, ["fd", "class_coverage"], HELD_OUT, seed=SAMPLE_SEED, real=held_out
            )
    numbers = {k: v for k, v in scores.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    numbers.pop("seed", None)  # the sampling seed, fixed
    return {"policy": policy, "seed": seed, "steps": steps, "wall_s": wall, **numbers}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--policies", default="none,diffaugment")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = json.loads(args.out.read_text())["runs"] if args.out.is_file() else []
    done = {(r["policy"], r["seed"], r["steps"]) for r in rows}
    held_out = held_out_digits()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "mnist_1k.parquet"
        cut_dataset(data)
        for seed in range(args.seeds):  # seed-major: an early stop still leaves pairs to compare
            for policy in args.policies.split(","):
                if (policy, seed, args.steps) in done:
                    continue
                row = run(policy, seed, args.steps, data, held_out)
                print(json.dumps(row), flush=True)
                rows.append(row)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps({"train_digits": TRAIN_DIGITS, "runs": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
