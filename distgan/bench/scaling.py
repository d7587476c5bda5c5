"""Section (d) of `python -m distgan.bench`: 1 vs 2 CPU processes, one thread each, weak scaling.

The parent launches this module's worker twice per repeat, alternating the order: once as a plain
`python -m distgan.bench --worker` (1 process) and once under
`ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2` with the global batch doubled
(same local batch: weak scaling). Each rank times the real train() on in-memory batches, measures
the loop's per-iteration collectives (stop flag, BatchNorm buffers) and its peak RSS, and writes
one JSON file. Efficiency = images/s with 2 processes / (2 x images/s with 1).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from distgan.bench import runs
from distgan.bench.runs import TARGETS, max_rss_mib, row, spread
from distgan.config import ExperimentConfig, load_config


def worker(args: argparse.Namespace) -> int:
    """One rank of a 1- or 2-process run: collectives' cost, then the timed train(), then a JSON file."""
    from distgan.distributed import build_accelerator, complete_from_launcher, launched_world_size
    from distgan.distributed.world import env_count

    torch.set_num_threads(1)
    world, rank = launched_world_size(), env_count("RANK", 0, least=0)
    cfg = load_config(args.config, args.overrides, world_size=world)
    batches = runs.load_batches(cfg, 8, args.data == "synthetic", rank, world)
    result = {"rank": rank, "world": world}
    if world > 1:
        result.update(runs.collective_costs(build_accelerator(complete_from_launcher(cfg)), cfg, calls=50))
    seconds, cpu_seconds = runs.time_trainer(
        cfg, batches, args.warmup, args.steps, "cpu", f"{args.result}.run"
    )
    images = runs.images_in_window(cfg, args.warmup, args.steps)
    result.update(
        seconds=seconds, cpu_seconds=cpu_seconds, images_per_sec=images / seconds, max_rss_mib=max_rss_mib()
    )
    Path(f"{args.result}.rank{rank}.json").write_text(json.dumps(result))
    return 0


def launch_worker(args: argparse.Namespace, cfg: ExperimentConfig, processes: int, out: Path) -> list[dict]:
    overrides = list(args.overrides)
    launcher: list[str] = []
    if processes > 1:
        # weak scaling: the same local batch per process, so the global batch grows with the world
        overrides.append(f"data.batch_size={cfg.data.batch_size * processes}")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        launcher = ["accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes)]
        launcher += ["--num_machines", "1", "--mixed_precision", cfg.train.mixed_precision]
        launcher += ["--dynamo_backend", "no", "--main_process_port", str(port), "-m"]
    prefix = [sys.executable, "-m", *launcher, "distgan.bench"]
    command = [*prefix, "--config", args.config, *overrides, "--worker", "--steps", str(args.scaling_steps)]
    command += ["--warmup", str(args.warmup), "--data", args.data, "--result", str(out)]
    env = dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1", WANDB_MODE="disabled")
    env.setdefault("HF_HUB_OFFLINE", "1")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(
            f"{processes}-process worker failed (exit {done.returncode}):\n{done.stderr[-6000:]}"
        )
    return [json.loads(Path(f"{out}.rank{r}.json").read_text()) for r in range(processes)]


def scaling(args: argparse.Namespace, cfg: ExperimentConfig) -> dict[str, dict]:
    one, two, efficiency, cpu_efficiency = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="distgan-bench-scaling-") as tmp:
        for r in range(args.scaling_repeats):
            order = (1, 2) if r % 2 == 0 else (2, 1)
            got = {n: launch_worker(args, cfg, n, Path(tmp) / f"run{r}-{n}") for n in order}
            one.append(got[1][0]), two.append(got[2])
            efficiency.append(got[2][0]["images_per_sec"] / (2 * got[1][0]["images_per_sec"]))
            cpu_efficiency.append(got[1][0]["cpu_seconds"] / max(rk["cpu_seconds"] for rk in got[2]))
    iteration_s = statistics.median(ranks[0]["seconds"] for ranks in two) / args.scaling_steps
    stop_us = statistics.median(max(rk["stop_flag_allreduce_us"] for rk in ranks) for ranks in two)
    buffer_us = statistics.median(max(rk["buffer_allreduce_us"] for rk in ranks) for ranks in two)
    gradient_us = statistics.median(max(rk["gradient_allreduce_us"] for rk in ranks) for ranks in two)
    ips1 = [w["images_per_sec"] for w in one]
    ips2 = [ranks[0]["images_per_sec"] for ranks in two]
    target = TARGETS["weak_scaling_efficiency"]
    return {
        "one_process_images_per_sec": row(
            "1 process, 1 thread", statistics.median(ips1), "img/s", **spread(ips1)
        ),
        "two_process_images_per_sec": row(
            "2 processes, 1 thread each",
            statistics.median(ips2),
            "img/s",
            note="global batch x2",
            **spread(ips2),
        ),
        "weak_scaling_efficiency": row(
            "(d) weak-scaling efficiency", statistics.median(efficiency), "", target, **spread(efficiency)
        ),
        "weak_scaling_efficiency_cpu_time": row(
            "(d) same, by CPU time (no waiting for the peer)",
            statistics.median(cpu_efficiency),
            "",
            note="load-robust: the extra work DDP adds",
            **spread(cpu_efficiency),
        ),
        "stop_flag_allreduce_us": row(
            "stop-flag all-reduce, per call (2 proc; the loop: every K steps)", stop_us, "us"
        ),
        "buffer_allreduce_us": row(
            "BatchNorm buffer all-reduce, per call (2 proc; the loop: at reads)", buffer_us, "us"
        ),
        "collectives_fraction": row(
            "stop flag + buffers if done every iteration (the loop does neither)",
            (stop_us + buffer_us) * 1e-6 / iteration_s,
            "",
        ),
        "gradient_allreduce_us": row("gradient all-reduce per iteration (2 proc)", gradient_us, "us"),
        "gradient_allreduce_fraction": row(
            "gradients, as a fraction of one iteration",
            gradient_us * 1e-6 / iteration_s,
            "",
            note="for scale",
        ),
        "peak_rss_mib_one_process": row(
            "(e) peak RSS, 1-process training", statistics.median(w["max_rss_mib"] for w in one), "MiB"
        ),
        "peak_rss_mib_two_process": row(
            "(e) peak RSS per rank, 2-process training",
            statistics.median(max(rk["max_rss_mib"] for rk in ranks) for ranks in two),
            "MiB",
        ),
    }
