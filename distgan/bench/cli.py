"""Benchmark distgan's trainer: overhead over a hand-written loop, loader, 1 vs 2 processes, memory, penalty.

    python -m distgan.bench --config configs/quickstart.yaml --out bench_quickstart.json
    python benchmarks/celeba_standin.py --out /tmp/celeba_standin     # CelebA-shaped local parquet
    python -m distgan.bench --config configs/celeba_wgan.yaml data.source=parquet \\
        data.path=/tmp/celeba_standin --steps 3 --warmup 1 --repeats 3 --out bench_celeba.json
    python -m distgan.bench --config configs/quickstart.yaml --tiny       # CI smoke run (< 1 min)
    python -m distgan.bench --config configs/quickstart.yaml --fastpath   # each fast-path option vs default
    python -m distgan.bench gpu --out benchmarks/results/gpu_check.json  # one GPU; --dry-run on CPU
    python -m distgan.bench quality --recipes toy_ring,toy_grid --seeds 5 --out q.json  # see bench/quality.py
    # one GPU: DCGAN-64 WGAN-GP in bf16; MFU against the card's bf16 peak (or --peak-tflops)
    python -m distgan.bench --config configs/celeba_wgan.yaml train.mixed_precision=bf16 \
        --data synthetic --skip loader,scaling --tf32 --out bench_gpu.json

Prints a table and writes JSON ("rows": one entry per table row). All runs are in-process
and alternated run by run; ratios are per pair, reported as min/median/max:
(a) the real `train()` loop fed from memory; (b) reference.py's hand-written loop on the same
batches; (c) loader-only throughput vs what (a) consumes; (d) 1 vs 2 CPU processes (one thread
each, `accelerate launch` of this module's --worker mode), weak scaling; (e) peak memory; (f) a
critic step with the gradient penalty vs without. Timing numbers come from here, never from tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import traceback
from pathlib import Path

import torch

from distgan.bench import runs
from distgan.bench.runs import TARGETS, row, spread, table
from distgan.config import ConfigError, ExperimentConfig, load_config
from distgan.errors import UserError, report

TINY = ["model.g_width=8", "model.d_width=8", "data.batch_size=16", "data.num_workers=0", "log.num_samples=4"]
# dense bf16 peaks by device-name substring, first match wins (no sparsity)
BF16_PEAK_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}
FASTPATH = (
    "train.channels_last=true,optim.implementation=foreach,optim.implementation=fused,train.compile=true"
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m distgan.bench", description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True, help="experiment YAML file (see configs/)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, as for distgan.train")
    p.add_argument("--repeats", type=int, default=5, help="alternated (a)/(b) pairs (and penalty rounds)")
    p.add_argument("--steps", type=int, default=20, help="timed G-step iterations per run")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations before the window")
    p.add_argument("--scaling-repeats", type=int, default=3, help="1-process / 2-process launch pairs")
    p.add_argument("--scaling-steps", type=int, help="timed iterations per scaling run (default: --steps)")
    p.add_argument("--tiny", action="store_true", help="tiny models, 2 steps, 1 repeat: CI smoke run")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    p.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads here (default: 1 on CPU, for stable numbers; 0 = torch's)",
    )
    p.add_argument("--data", choices=("real", "synthetic"), default="real", help="batches for (a)/(b)")
    p.add_argument("--loader-batches", type=int, default=20, help="batches timed for loader throughput")
    p.add_argument(
        "--skip", default="", help="comma list of sections to skip: overhead, loader, penalty, flops, scaling"
    )
    p.add_argument("--fastpath", action="store_true", help="also time each fast-path option vs the default")
    p.add_argument("--fastpath-options", default=FASTPATH, help="comma list of overrides timed by --fastpath")
    p.add_argument("--tf32", action="store_true", help="GPU: allow TF32 matmuls/convs in both loops")
    p.add_argument("--peak-tflops", type=float, help="accelerator peak for MFU (default: known GPUs, bf16)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one rank of section (d)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.tiny:
        args.overrides = TINY + args.overrides
        args.steps, args.warmup, args.repeats, args.scaling_repeats, args.loader_batches = 2, 1, 1, 1, 3
        args.scaling_steps = None
    args.scaling_steps = args.scaling_steps if args.scaling_steps is not None else args.steps
    return args


# (flag, attribute, smallest valid value): counts that make no measurement below it
COUNTS = (
    ("--steps", "steps", 1),
    ("--warmup", "warmup", 0),
    ("--repeats", "repeats", 1),
    ("--scaling-repeats", "scaling_repeats", 1),
    ("--scaling-steps", "scaling_steps", 1),
    ("--loader-batches", "loader_batches", 1),
    ("--threads", "threads", 0),
)


def check_counts(args: argparse.Namespace) -> None:
    """ConfigError naming the first count flag below its smallest valid value."""
    for flag, name, least in COUNTS:
        value = getattr(args, name)
        if value is not None and value < least:
            raise ConfigError(f"{flag}: must be >= {least}, got {value}")


# ---------------------------------------------------------------- (a), (b), (c), (e), (f) in this process


def images_per_sec(cfg: ExperimentConfig, args: argparse.Namespace, seconds: float) -> float:
    return runs.images_in_window(cfg, args.warmup, args.steps) / seconds


def overhead(args, cfg: ExperimentConfig, batches, device: torch.device) -> dict[str, dict]:
    """(a) and (b) alternated run by run (ABBA...), ratio per pair; GPU peak memory of each.

    The wall-clock ratio is the target's; the CPU-time ratio (one thread: the work done, minus the
    time other processes held the core) is its load-robust twin on a shared CPU machine.
    """
    ips = {"trainer": [], "reference": []}
    ratio, cpu_ratio, peak = [], [], {"trainer": 0.0, "reference": 0.0}
    for r in range(args.repeats):
        wall, cpu = {}, {}
        for name in ("trainer", "reference") if r % 2 == 0 else ("reference", "trainer"):
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            timer = runs.time_trainer if name == "trainer" else runs.time_reference
            wall[name], cpu[name] = timer(cfg, batches, args.warmup, args.steps, device)
            ips[name].append(images_per_sec(cfg, args, wall[name]))
            if device.type == "cuda":
                peak[name] = max(peak[name], torch.cuda.max_memory_allocated() / 2**20)
        ratio.append(wall["reference"] / wall["trainer"])
        cpu_ratio.append(cpu["reference"] / cpu["trainer"])
    gpu_note = "" if device.type == "cuda" else "no GPU in this session"
    gpu = {k: (v if device.type == "cuda" else None) for k, v in peak.items()}
    a, b = ips["trainer"], ips["reference"]
    return {
        "trainer_images_per_sec": row(
            "(a) distgan trainer, in-memory batches", statistics.median(a), "img/s", **spread(a)
        ),
        "reference_images_per_sec": row(
            "(b) hand-written PyTorch loop", statistics.median(b), "img/s", **spread(b)
        ),
        "overhead_ratio": row(
            "(a)/(b) overhead ratio", statistics.median(ratio), "", TARGETS["overhead_ratio"], **spread(ratio)
        ),
        "overhead_ratio_cpu_time": row(
            "(a)/(b) by process CPU time",
            statistics.median(cpu_ratio),
            "",
            TARGETS["overhead_ratio"],
            note="load-robust on CPU",
            **spread(cpu_ratio),
        ),
        "gpu_peak_mib_trainer": row("(e) GPU peak allocated, (a)", gpu["trainer"], "MiB", note=gpu_note),
        "gpu_peak_mib_reference": row("(e) GPU peak allocated, (b)", gpu["reference"], "MiB", note=gpu_note),
    }


def loader(args, cfg: ExperimentConfig, device: torch.device, consumption: float) -> dict[str, dict]:
    """(c) the stream alone, and the trainer fed by the real stream (what a user actually gets)."""
    from distgan.bench.loader import loader_throughput
    from distgan.data import build_train_stream

    alone = [loader_throughput(cfg, args.loader_batches) for _ in range(min(args.repeats, 3))]
    stream = build_train_stream(cfg, 0, 1)
    try:
        real = images_per_sec(cfg, args, runs.time_trainer(cfg, stream, args.warmup, args.steps, device)[0])
    finally:
        stream.close()
    return {
        "loader_images_per_sec": row(
            "(c) loader alone (1 process)", statistics.median(alone), "img/s", **spread(alone)
        ),
        "loader_to_consumption": row(
            "(c) loader / training consumption (a)",
            statistics.median(alone) / consumption,
            "x",
            TARGETS["loader_to_consumption"],
        ),
        "trainer_real_data_images_per_sec": row(
            "distgan trainer fed by the real loader", real, "img/s", note="1 run; loader shares the cores"
        ),
    }


def penalty(args, cfg: ExperimentConfig, batches) -> dict[str, dict]:
    """(f) seconds per critic step with and without the WGAN-GP penalty (real backend + d_step)."""
    pairs = runs.time_d_steps(cfg, batches, max(2, args.steps // 2), args.repeats)
    ratio = [gp / plain for gp, plain in pairs]
    return {
        "gp_d_step_ms": row(
            "(f) critic step with gradient penalty", statistics.median(p[0] for p in pairs) * 1e3, "ms"
        ),
        "plain_d_step_ms": row(
            "(f) critic step without penalty", statistics.median(p[1] for p in pairs) * 1e3, "ms"
        ),
        "gp_cost_ratio": row("(f) penalty step / plain step", statistics.median(ratio), "x", **spread(ratio)),
    }


def flops(args, cfg: ExperimentConfig, batches, device: torch.device, trainer_ips: float) -> dict[str, dict]:
    """Model FLOPs of one iteration (forward, backward, the penalty's double backward), counted by torch."""
    per_iteration = runs.model_flops_per_iteration(cfg, batches, device)
    achieved = per_iteration * trainer_ips / runs.images_in_window(cfg, 0, 1) / 1e12
    peak = args.peak_tflops
    if peak is None and device.type == "cuda":
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)
    return {
        "model_gflop_per_iteration": row(
            "model GFLOP per iteration (n_critic D + 1 G)", per_iteration / 1e9, "GFLOP"
        ),
        "achieved_tflops": row("achieved model TFLOP/s, (a)", achieved, "TFLOP/s"),
        "mfu": row(
            "MFU vs peak",
            achieved / peak if peak else None,
            "",
            note=f"peak {peak} TFLOP/s" if peak else "no peak known (GPU: --peak-tflops, default bf16 table)",
        ),
    }


def fastpath(args, cfg_path: str, overrides: list[str], batches, device: torch.device) -> dict[str, dict]:
    """Each option's (a) throughput over the default's, alternated run by run."""
    base = load_config(cfg_path, overrides)
    out = {}
    for option in [o.strip() for o in args.fastpath_options.split(",") if o.strip()]:
        cfg = load_config(cfg_path, [*overrides, option])
        ratio, cpu_ratio = [], []
        for r in range(args.repeats):
            got = {}
            for name, c in (
                (("base", base), ("option", cfg)) if r % 2 == 0 else (("option", cfg), ("base", base))
            ):
                torch._dynamo.reset()
                got[name] = runs.time_trainer(c, batches, args.warmup, args.steps, device)
            ratio.append(got["base"][0] / got["option"][0])  # > 1: the option is faster
            cpu_ratio.append(got["base"][1] / got["option"][1])
        out[f"fastpath {option}"] = row(
            f"fast path: {option} / default",
            statistics.median(ratio),
            "x",
            note=f"CPU time: {statistics.median(cpu_ratio):.3f}",
            cpu_time_median=statistics.median(cpu_ratio),
            **spread(ratio),
        )
    return out


# ---------------------------------------------------------------- report


def environment(args, device: torch.device) -> dict:
    name = (
        torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or platform.machine()
    )
    return {
        "device": f"{device.type} ({name})",
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "tf32": bool(args.tf32 and device.type == "cuda"),
    }


def main(argv: list[str] | None = None) -> int:
    from distgan.bench.scaling import scaling, worker
    from distgan.host_memory import keep_freed_host_memory

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["gpu"]:  # the one-command GPU check (bench/gpu.py)
        from distgan.bench.gpu import main as gpu_main

        return gpu_main(argv[1:])
    if argv[:1] == ["quality"]:  # a subcommand of its own: trains recipes over seeds and scores them
        from distgan.bench.quality import main as quality_main

        return quality_main(argv[1:])
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    threads = args.threads if args.threads is not None else (1 if device.type == "cpu" else 0)
    if threads:
        torch.set_num_threads(threads)
    if device.type == "cpu":
        keep_freed_host_memory()  # what train() sets on CPU: (b) gets the same allocator from run 1
    if args.tf32 and device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    load_before = os.getloadavg()
    try:  # bad input fails before anything is timed
        check_counts(args)
        cfg = load_config(args.config, args.overrides)
        batches = runs.load_batches(cfg, 8, args.data == "synthetic")
    except UserError as err:
        return report(err)
    sections = {
        "overhead": lambda: overhead(args, cfg, batches, device),
        "loader": lambda: loader(args, cfg, device, rows["trainer_images_per_sec"]["value"]),
        "penalty": lambda: penalty(args, cfg, batches),
        "flops": lambda: flops(args, cfg, batches, device, rows["trainer_images_per_sec"]["value"]),
        "scaling": lambda: scaling(args, cfg),
        "fastpath": lambda: fastpath(args, args.config, args.overrides, batches, device),
    }
    rows: dict[str, dict] = {}
    failed = []
    for name, measure in sections.items():
        if name in skip or (name == "fastpath" and not args.fastpath):
            continue
        if name in ("loader", "flops") and "trainer_images_per_sec" not in rows:
            continue  # both are relative to (a)
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        try:  # one failing section must not lose the others' minutes of measurements
            rows.update(measure())
        except Exception as err:  # reported in the table and JSON, and in the exit code
            failed.append(name)
            rows[f"{name}_error"] = row(f"{name}: FAILED", None, note=f"{type(err).__name__}: {err}"[:300])
            traceback.print_exc()
    rows["peak_rss_mib_bench"] = row("(e) peak RSS of this process ((a)+(b)+...)", runs.max_rss_mib(), "MiB")
    result = {
        "config": args.config,
        "overrides": args.overrides,
        "settings": {
            "steps": args.steps,
            "warmup": args.warmup,
            "repeats": args.repeats,
            "scaling_repeats": args.scaling_repeats,
            "scaling_steps": args.scaling_steps,
            "data": args.data,
            "tiny": args.tiny,
            "batch_size": cfg.data.batch_size,
            "n_critic": cfg.train.n_critic,
            "mixed_precision": cfg.train.mixed_precision,
        },
        "environment": environment(args, device),
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "rows": rows,
    }
    env = result["environment"]
    print(
        f"distgan bench: {args.config} {' '.join(args.overrides)}\n"
        f"{env['device']}, {env['threads']} thread(s), torch {env['torch']}, data={args.data}, "
        f"{args.steps} timed steps after {args.warmup}, {args.repeats} repeats, "
        f"load average {load_before[0]:.2f} -> {result['load_average']['after'][0]:.2f}"
    )
    print(table(rows))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
