"""What augmentation and lazy R1 cost per training iteration (one D step + one G step), on this CPU.

    python benchmarks/augment_cost.py --out benchmarks/results/cpu2_augment_cost.json
    python benchmarks/augment_cost.py --config configs/celeba_dcgan.yaml data.batch_size=16 --out ...

One process, one torch thread, the real `step.d_step` / `step.g_step` on the real backend
(accelerate, one process) and a fixed random batch. Variants share one G and D and are alternated
block by block (`--repeats` blocks of `--iterations` iterations each), so machine load hits all of
them alike; the figure is the median over blocks of CPU time per iteration (process_time: the work
done, robust to other jobs on the machine; wall time is also recorded). Variants: no augmentation,
DiffAugment (translation, color, cutout), ADA at p = 0.5 (xflip, translation, color, cutout), R1
on every D step, lazy R1 every 4th D step (x4 weight).

    python benchmarks/augment_cost.py --groups --out benchmarks/results/augment_cost.json

`--groups` measures each of ADA's groups instead (blit, geom, color_matrix, filter, noise, cutout;
then bgc and bgcfnc whole): the CPU time to draw and apply one augmentation of 32 RGB images of 32
and 64 px at p = 1 (every op of the group on every image), and its ratio to one forward pass of the
DCGAN discriminator over the same batch. One thread, medians of `--repeats` blocks.
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

from distgan import augment, step
from distgan.config import load_config, override
from distgan.data import Batch
from distgan.distributed import build_accelerator, build_backend
from distgan.models import build_discriminator, build_generator

VARIANTS = {  # name: (overrides, augment p, R1 every N iterations or 0)
    "none": ([], 0.0, 0),
    "diffaugment": (["augment.policy=diffaugment"], 1.0, 0),
    "ada_p0.5": (["augment.policy=ada", "augment.ops=[xflip,translation,color,cutout]"], 0.5, 0),
    "r1_every_step": (["objective.r1_weight=1"], 0.0, 1),
    "r1_lazy_4": (["objective.r1_weight=1", "objective.r1_every=4"], 0.0, 4),
}


GROUPS = {  # name: the augment overrides that turn on that group alone, or a whole pipe
    "blit": ["augment.ops=[blit]"],
    "geom": ["augment.ops=[geom]"],
    "color_matrix": ["augment.ops=[color_matrix]"],
    "filter": ["augment.ops=[filter]"],
    "noise": ["augment.ops=[noise]"],
    "cutout": ["augment.ops=[cutout]"],
    "bgc": ["augment.pipe=bgc"],
    "bgcfnc": ["augment.pipe=bgcfnc"],
}
GROUP_BATCH, GROUP_SIDES = 32, (32, 64)


def _median_cpu(repeats: int, calls: int, work, *args) -> float:
    """Median over `repeats` blocks of the CPU seconds per call of work(*args) (after a warm-up call)."""
    work(*args)
    times = []
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(calls):
            work(*args)
        times.append((time.process_time() - start) / calls)
    return statistics.median(times)


def _augment_once(cfg, images: torch.Tensor) -> torch.Tensor:
    return augment.apply(images, augment.draw(cfg, images.shape[0], images.shape[-1], 1.0, "cpu"))


def group_costs(repeats: int, calls: int = 5) -> dict:
    """{side: {"d_forward_ms": ..., group: {"ms": ..., "vs_d_forward": ...}}} at p = 1."""
    results = {}
    for side in GROUP_SIDES:
        base = ["model.arch=dcgan", "model.channels=3", f"data.resolution={side}", "augment.policy=ada"]
        cfg = load_config(None, base)
        torch.manual_seed(0)
        discriminator = build_discriminator(cfg.model, cfg.sample_shape)
        images = torch.rand(GROUP_BATCH, *cfg.sample_shape) * 2 - 1
        d_forward = _median_cpu(repeats, calls, discriminator, images)
        row = {"d_forward_ms": d_forward * 1000}
        for name, extra in GROUPS.items():
            augment_cfg = load_config(None, [*base, *extra]).augment
            cost = _median_cpu(repeats, calls, _augment_once, augment_cfg, images)
            row[name] = {"ms": cost * 1000, "vs_d_forward": cost / d_forward}
            print(f"{side:>3} px {name:>13}: {cost * 1000:7.2f} ms, {cost / d_forward:5.2f} x D forward")
        results[str(side)] = row
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="configs/quickstart.yaml")
    parser.add_argument("--iterations", type=int, default=8, help="per block (a multiple of 4)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--groups", action="store_true", help="time ADA's groups instead (see above)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.groups:
        environment = {"batch": GROUP_BATCH, "channels": 3, "p": 1.0, "torch": torch.__version__,
                       "python": platform.python_version(), "threads": 1, "repeats": args.repeats,
                       "measured": time.strftime("%Y-%m-%d")}  # fmt: skip
        costs = group_costs(args.repeats)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"environment": environment, "sides": costs}, indent=2) + "\n")
        return
    base = load_config(args.config, [*args.overrides, "train.ema_decay=0", "train.out_dir=/tmp/unused"])
    accelerator = build_accelerator(base)
    torch.manual_seed(0)
    backend = build_backend(
        accelerator,
        base,
        build_generator(base.model, base.sample_shape),
        build_discriminator(base.model, base.sample_shape),
    )
    device, n = accelerator.device, base.data.batch_size
    labels = torch.arange(n) % base.model.num_classes if base.model.num_classes else None
    batch = Batch(torch.rand(n, *base.sample_shape) * 2 - 1, labels).to(device)
    configs = {name: override(base, extra) for name, (extra, _, _) in VARIANTS.items()}

    def block(name: str):
        cfg, (_, p, every) = configs[name], VARIANTS[name]
        counter = iter(range(args.iterations))

        def one_iteration() -> None:
            i = next(counter)
            step.d_step(backend, cfg, batch, augment_p=p, r1_due=bool(every) and i % every == 0)
            step.g_step(backend, cfg, n, device, augment_p=p)

        return cpu_and_wall_per_iteration(one_iteration, args.iterations)

    samples = in_turns({name: (lambda name=name: block(name)) for name in VARIANTS}, args.repeats)
    rows = {}
    base_cpu = statistics.median(c for c, _ in samples["none"])
    for name, values in samples.items():
        cpu = statistics.median(c for c, _ in values)
        rows[name] = {
            "cpu_s_per_iteration": cpu,
            "wall_s_per_iteration": statistics.median(w for _, w in values),
            "vs_none": cpu / base_cpu - 1.0,
        }
        print(f"{name:>14}: {cpu * 1000:8.1f} ms CPU / iteration, {rows[name]['vs_none']:+.1%} vs none")
    environment = {"config": args.config, "overrides": args.overrides, "batch": n, "shape": list(base.sample_shape),
                   "torch": torch.__version__, "python": platform.python_version(), "threads": 1,
                   "iterations": args.iterations, "repeats": args.repeats}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"environment": environment, "variants": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
