"""SN-ResNet 64 px vs the DCGAN CelebA recipe on this machine: images/s and peak memory per process.

    python benchmarks/celeba_standin.py --out /tmp/celeba_standin
    python benchmarks/resnet_cpu.py --data /tmp/celeba_standin [--steps 3] [--batch 16] [--repeats 2]

Each variant is the shipped recipe (full widths) with the data pointed at the local CelebA stand-in,
run by `python -m distgan.train` in a fresh process with OMP_NUM_THREADS=1: 2 x --steps G steps,
logged every --steps, so the second log line's images_per_sec is the steady-state throughput (start-up,
first-batch decode and allocation excluded). Peak memory is the training process's peak RSS. Variants
alternate within each repeat so that load from other jobs hits them alike; the median is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FP32 = "train.mixed_precision='no'"  # quoted: YAML reads a bare no as false
VARIANTS = {
    "dcgan 64 px (celeba_dcgan.yaml), fp32": ["configs/celeba_dcgan.yaml"],
    "resnet 64 px (celeba_resnet.yaml), fp32": ["configs/celeba_resnet.yaml", FP32],
    "resnet 64 px (celeba_resnet.yaml), bf16 autocast": ["configs/celeba_resnet.yaml"],
}


def run_once(config_and_overrides: list[str], data: Path, steps: int, batch: int) -> dict:
    config, *overrides = config_and_overrides
    with tempfile.TemporaryDirectory() as out:
        cmd = [
            sys.executable, "-m", "distgan.train", "--config", config, *overrides,
            "data.source=parquet", f"data.path={data}", f"data.batch_size={batch}", "data.num_workers=0",
            "data.shuffle_buffer=64", f"train.steps={2 * steps}", f"log.every={steps}", "log.sample_every=0",
            "checkpoint.every=0", f"train.out_dir={out}/run", "--resume", "never",
        ]  # fmt: skip
        env = dict(os.environ, OMP_NUM_THREADS="1", WANDB_MODE="disabled", HF_HUB_OFFLINE="1")
        with open(Path(out) / "log.txt", "w") as log:
            child = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(child.pid, 0)  # this child's own peak RSS
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(cmd)}\n{(Path(out) / 'log.txt').read_text()[-3000:]}")
        lines = [json.loads(line) for line in (Path(out) / "run" / "metrics.jsonl").read_text().splitlines()]
    return {"images_per_sec": lines[-1]["images_per_sec"], "peak_rss_kib": usage.ru_maxrss}


def parameters(config: str) -> tuple[int, int]:
    from distgan.config import load_config
    from distgan.memory_check import estimate

    footprint = estimate(load_config(REPO / config), world_size=1)
    return footprint.generator_params, footprint.discriminator_params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="CelebA stand-in parquet directory")
    parser.add_argument("--steps", type=int, default=3, help="timed G steps (after as many warm-up steps)")
    parser.add_argument("--batch", type=int, default=16, help="global batch")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)

    samples: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    for _ in range(args.repeats):
        for name, variant in VARIANTS.items():
            samples[name].append(run_once(variant, args.data, args.steps, args.batch))
    load = os.getloadavg()[0]
    results = {}
    for name, runs in samples.items():
        g, d = parameters(VARIANTS[name][0])
        rss = [r["peak_rss_kib"] for r in runs]
        results[name] = {
            "images_per_sec": statistics.median(r["images_per_sec"] for r in runs),
            "images_per_sec_all": [r["images_per_sec"] for r in runs],
            "peak_rss_mib": max(rss) / 1024,
            "generator_params": g,
            "discriminator_params": d,
        }
        print(
            f"{name:50s} {results[name]['images_per_sec']:8.2f} img/s  "
            f"peak RSS {results[name]['peak_rss_mib']:7.0f} MiB  G {g / 1e6:.1f}M D {d / 1e6:.1f}M"
        )
    print(
        f"batch {args.batch}, {args.steps} timed steps, 1 thread per process; load average at the end {load:.1f}"
    )
    if args.out:
        args.out.write_text(
            json.dumps({"batch": args.batch, "steps": args.steps, "load": load, **results}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
