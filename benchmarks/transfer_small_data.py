"""Small-data transfer: 1,000 digits from scratch, or initialised from a run on the other digits.

    python benchmarks/transfer_small_data.py --seeds 3 --out benchmarks/results/cpu2_transfer_small_data.json

The embedded 5,000-digit MNIST sample is split by class. The source run trains a recipe
(default configs/stylegan2_mnist.yaml, unconditional) on every digit 0-4 for --source-steps. The
target set is the first 1,000 digits 5-9; each seed then trains the same recipe on it for
--target-steps twice: from scratch, and with `train.init_from` the source run (G, D and EMA
weights; fresh optimizers, step 0). Both are scored on the shipped MNIST classifier's features
against the digits 5-9 that the target runs never see (FD, KID, precision, recall, class KL).
One torch thread per run; `--jobs 2` runs two target trainings at a time.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from distgan.bench.quality import IMAGE_METRICS, IMAGE_SAMPLES, SAMPLE_SEED, scores_to_report
from distgan.bench.runs import reset_accelerate
from distgan.config import load_config
from distgan.data import real_examples
from distgan.data.sources import EMBEDDED_PATH
from distgan.generation import load_generator
from distgan.metrics import evaluate_generator, valid_metrics
from distgan.trainer import train

TARGET_DIGITS = 1000
SOURCE_CLASSES, TARGET_CLASSES = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)


def split_dataset(folder: Path) -> dict[str, Path]:
    """source.parquet (every digit 0-4), target.parquet (the first 1,000 digits 5-9) and
    held_out.parquet (the other digits 5-9), in the embedded file's order and schema."""
    table = pq.read_table(EMBEDDED_PATH)
    in_source = pc.is_in(table["label"], value_set=pa.array(SOURCE_CLASSES, type=table["label"].type))
    target_all = table.filter(pc.invert(in_source))
    parts = {
        "source": table.filter(in_source),
        "target": target_all.slice(0, TARGET_DIGITS),
        "held_out": target_all.slice(TARGET_DIGITS),
    }
    paths = {}
    for name, part in parts.items():
        paths[name] = folder / f"{name}.parquet"
        pq.write_table(part, paths[name])
    return paths


def train_run(recipe: str, data: Path, steps: int, seed: int, run_dir: Path, extra: list[str]) -> float:
    torch.set_num_threads(1)
    cfg = load_config(
        recipe,
        [
            "data.source=parquet",
            f"data.path={data}",
            f"train.steps={steps}",
            f"train.seed={seed}",
            f"train.out_dir={run_dir}",
            "log.every=250",
            "log.sample_every=0",
            f"checkpoint.every={steps}",
            *extra,
        ],
    )
    reset_accelerate()
    start = time.process_time()
    if train(cfg, resume="never") != 0:
        raise RuntimeError(f"training {run_dir} failed")
    return time.process_time() - start


def target_row(recipe: str, paths: dict[str, Path], steps: int, seed: int, source_run: Path | None) -> dict:
    """One target training (from scratch when source_run is None) and its scores on held-out digits."""
    with tempfile.TemporaryDirectory(prefix="distgan_transfer_") as run_dir:
        extra = [] if source_run is None else [f"train.init_from={source_run}"]
        cpu_s = train_run(recipe, paths["target"], steps, seed, Path(run_dir), extra)
        cfg = load_config(recipe, ["data.source=parquet", f"data.path={paths['held_out']}"])
        held_out = real_examples(cfg, IMAGE_SAMPLES)
        metrics = [m for m in IMAGE_METRICS if m in valid_metrics(cfg)]
        generator = load_generator(run_dir)
        with torch.no_grad():
            scores = evaluate_generator(
                generator, cfg, metrics, IMAGE_SAMPLES, seed=SAMPLE_SEED, real=held_out
            )
    start = "scratch" if source_run is None else "init_from"
    return {"start": start, "seed": seed, "steps": steps, "cpu_s": cpu_s, **scores_to_report(scores)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="configs/stylegan2_mnist.yaml")
    parser.add_argument("--source-steps", type=int, default=2000)
    parser.add_argument("--target-steps", type=int, default=600)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=1, help="target trainings at a time")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="distgan_transfer_data_") as tmp:
        paths = split_dataset(Path(tmp))
        source_run = Path(tmp) / "source_run"
        print(f"source: {args.recipe} on digits 0-4, {args.source_steps} steps", flush=True)
        source_cpu_s = train_run(args.recipe, paths["source"], args.source_steps, 0, source_run, [])
        jobs = [(seed, start) for seed in range(args.seeds) for start in (None, source_run)]
        spawn = multiprocessing.get_context("spawn")
        rows = []
        with ProcessPoolExecutor(args.jobs, mp_context=spawn) as pool:
            futures = [
                pool.submit(target_row, args.recipe, paths, args.target_steps, seed, start)
                for seed, start in jobs
            ]
            for future in futures:
                rows.append(future.result())
                print(json.dumps(rows[-1]), flush=True)
                report = {
                    "recipe": args.recipe,
                    "source": {"classes": SOURCE_CLASSES, "steps": args.source_steps, "cpu_s": source_cpu_s},
                    "target": {
                        "classes": TARGET_CLASSES,
                        "digits": TARGET_DIGITS,
                        "steps": args.target_steps,
                    },
                    "date": time.strftime("%Y-%m-%d"),
                    "torch": torch.__version__,
                    "runs": rows,
                }
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(report, indent=2) + "\n")
    for start in ("scratch", "init_from"):
        fds = sorted(r["fd1k_mnist_classifier"] for r in rows if r["start"] == start)
        print(f"{start}: FD per seed {fds}")


if __name__ == "__main__":
    main()
