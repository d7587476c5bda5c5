"""What StyleGAN2's regularizers cost per training iteration (one D step + one G step), on this CPU.

    python benchmarks/stylegan2_regularizer_cost.py --out benchmarks/results/stylegan2_regularizer_cost.json
    python benchmarks/stylegan2_regularizer_cost.py --out ... model.channel_base=1024 data.batch_size=16

One process, one torch thread, the real `step.Phases` on the real backend (accelerate, one process),
a tiny StyleGAN2 (32 px, channel_base 256, channel_max 32, 2 mapping layers; overrides change it)
and a fixed random batch. Variants share one G and D and are alternated block by block (`--repeats`
blocks of `--iterations` iterations), so machine load hits all of them alike; the figure is the
median over blocks of CPU time per iteration (process_time: robust to other jobs; wall time is
recorded too), and its ratio to the plain step. Variants: plain; path-length regularization on
every G step and lazily every 4th (StyleGAN2's interval, x4 weight); R1 on every D step and lazily
every 16th (StyleGAN2's); both lazy ones together (StyleGAN2's recipe).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from timing import cpu_and_wall_per_iteration, in_turns

from distgan import step
from distgan.augment import AugmentPipe
from distgan.config import load_config, override
from distgan.data import Batch
from distgan.distributed import build_accelerator, build_backend
from distgan.models import build_discriminator, build_generator

TINY_STYLEGAN2 = [
    "model.arch=stylegan2",
    "model.channels=3",
    "model.latent_dim=32",
    "model.w_dim=32",
    "model.mapping_layers=2",
    "model.channel_base=256",
    "model.channel_max=32",
    "model.mbstd_group=4",
    "data.resolution=32",
    "data.batch_size=8",
]
PL, R1 = ["objective.pl_weight=2"], ["objective.r1_weight=1"]
VARIANTS = {  # name: (overrides, R1 every N D steps or 0, path length every N G steps or 0)
    "plain": ([], 0, 0),
    "pl_every_step": ([*PL, "objective.pl_every=1"], 0, 1),
    "pl_lazy_4": ([*PL, "objective.pl_every=4"], 0, 4),
    "r1_every_step": ([*R1, "objective.r1_every=1"], 1, 0),
    "r1_lazy_16": ([*R1, "objective.r1_every=16"], 16, 0),
    "r1_lazy_16+pl_lazy_4": ([*R1, "objective.r1_every=16", *PL, "objective.pl_every=4"], 16, 4),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=16, help="per block (a multiple of 16)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    torch.set_num_threads(1)
    base = load_config(None, [*TINY_STYLEGAN2, *args.overrides, "train.out_dir=/tmp/unused"])
    accelerator = build_accelerator(base)
    torch.manual_seed(0)
    backend = build_backend(
        accelerator,
        base,
        build_generator(base.model, base.sample_shape),
        build_discriminator(base.model, base.sample_shape),
    )
    device, n = accelerator.device, base.data.batch_size
    batch = Batch(torch.rand(n, *base.sample_shape) * 2 - 1, None).to(device)
    phases = {}
    for name, (extra, _, _) in VARIANTS.items():
        cfg = override(base, extra)
        pipe = AugmentPipe.fixed(cfg.augment, cfg.data.resolution, 0.0)
        phases[name] = step.Phases(backend, step.PhaseSettings.of(cfg), pipe)

    def block(name: str):
        _, r1_every, pl_every = VARIANTS[name]
        counter = iter(range(args.iterations))

        def one_iteration() -> None:
            i = next(counter)
            phases[name].discriminator_step(batch, regularize=bool(r1_every) and i % r1_every == 0)
            phases[name].generator_step(n, device, regularize=bool(pl_every) and i % pl_every == 0)

        return cpu_and_wall_per_iteration(one_iteration, args.iterations)

    samples = in_turns({name: (lambda name=name: block(name)) for name in VARIANTS}, args.repeats)
    plain = statistics.median(cpu for cpu, _ in samples["plain"])
    results = {}
    for name, values in samples.items():
        cpu = statistics.median(c for c, _ in values)
        results[name] = {
            "cpu_s_per_iteration": round(cpu, 5),
            "wall_s_per_iteration": round(statistics.median(w for _, w in values), 5),
            "ratio_to_plain": round(cpu / plain, 3),
        }
        print(f"{name:24s} {cpu * 1000:8.1f} ms CPU per iteration   x{cpu / plain:.2f}")
    report = {
        "what": "CPU time per iteration (1 D step + 1 G step), median over blocks; ratio to the plain step",
        "model": TINY_STYLEGAN2 + list(args.overrides),
        "iterations_per_block": args.iterations,
        "repeats": args.repeats,
        "threads": 1,
        "machine": {"processor": platform.processor() or platform.machine(), "torch": torch.__version__},
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
