"""`python -m distgan.bench gpu`: the one-command GPU check, for the first time a GPU is lent.

    python -m distgan.bench gpu --out benchmarks/results/gpu_check.json     # one GPU, < 8 minutes
    python -m distgan.bench gpu --dry-run --out /tmp/gpu_check.json          # CPU: its own plumbing

Installs nothing beyond the README install. Runs, per variant, the real train() on in-memory
synthetic batches and the hand-written reference loop, and writes ONE JSON (schema SCHEMA):
images/s, peak GPU memory, MFU against the card's dense peak, the (a)/(b) ratio, host syncs per
iteration between log steps (torch.cuda.set_sync_debug_mode counts them), and under fp16 whether
the penalty stayed finite and the loss scale healthy. Variants: celeba_wgan (DCGAN-64) and
celeba_resnet (when its config exists) in bf16 and fp16; stylegan2_ffhq256 (StyleGAN2 `paper256`,
256 px, with its ADA, lazy R1, style mixing and EMA) in bf16 at batch 32; on celeba_wgan bf16, TF32
off, channels_last on and compile on, one at a time. Then a 2-process launch on the one GPU, which
must be refused with a clear message. Then the time of fid10k (bench/fid_timing.py: generation,
embedding, statistics; the real Inception with `--inception-weights PATH`). Past `--budget-s` the remaining variants are skipped (and
say so). `--dry-run` builds every variant, runs each for a step or two on CPU with tiny models
(fp16 and compile cannot run there: recorded as such) and writes the same schema.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from distgan.bench import runs
from distgan.bench.fid_timing import time_fid
from distgan.config import load_config, override
from distgan.errors import UserError, report

SCHEMA = "distgan.bench.gpu/1"
REPO = Path(__file__).resolve().parents[2]
MODELS = {"celeba_wgan": "configs/celeba_wgan.yaml", "celeba_resnet": "configs/celeba_resnet.yaml"}
STYLEGAN2 = ("stylegan2_ffhq256", "configs/stylegan2_ffhq256.yaml")
# 32 images per step on the one GPU (the recipe: 8 on each of 8): about a minute there, trainer and
# reference loop together. The reference loop has no ADA and no lazy R1 (it penalises every D step),
# so this variant's overhead_ratio compares unlike loops; its images/s and memory are the recipe's.
STYLEGAN2_GPU = ["train.mixed_precision=bf16", "data.batch_size=32"]
DENSE_PEAK_TFLOPS = {
    "H100 PCIe": 756.0,
    "H100": 989.0,
    "H200": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
}  # bf16=fp16
DRY = ["model.g_width=8", "model.d_width=8", "data.batch_size=4", "data.num_workers=0", "log.num_samples=4"]
DRY_STYLEGAN2 = [  # 32 px, at most 4 feature maps, a one-layer mapping network of width 8: seconds
    "data.resolution=32",
    "model.channel_base=64",
    "model.channel_max=4",
    "model.w_dim=8",
    "model.latent_dim=8",
    "model.mapping_layers=1",
    "model.mbstd_group=2",
    "data.batch_size=4",
    "data.num_workers=0",
    "log.num_samples=4",
]
SYNC_WARNING = "called a synchronizing CUDA operation"  # torch's text under set_sync_debug_mode("warn")


@dataclass
class Variant:
    name: str
    config: str
    overrides: list[str] = field(default_factory=list)
    tf32: bool = True
    dry: list[str] = field(default_factory=lambda: list(DRY))  # --dry-run: the tiny sizes for CPU


def variants(root: Path = REPO) -> tuple[list[Variant], list[str]]:
    """Every variant whose config exists, and the names of models without a config (yet)."""
    found, missing = [], []
    for model, path in MODELS.items():
        if not (root / path).is_file():
            missing.append(model)
            continue
        for precision in ("bf16", "fp16"):
            found.append(
                Variant(f"{model}/{precision}", str(root / path), [f"train.mixed_precision={precision}"])
            )
    base = found[0]  # celeba_wgan/bf16: the toggles, one at a time
    name, path = STYLEGAN2
    if (root / path).is_file():
        found.append(Variant(f"{name}/bf16", str(root / path), STYLEGAN2_GPU, dry=DRY_STYLEGAN2))
    else:
        missing.append(name)
    found += [
        Variant(f"{base.name}/tf32_off", base.config, base.overrides, tf32=False),
        Variant(f"{base.name}/channels_last", base.config, [*base.overrides, "train.channels_last=true"]),
        Variant(f"{base.name}/compile", base.config, [*base.overrides, "train.compile=true"]),
    ]
    return found, missing


class SyncCounter:
    """Host-device syncs while started: CUDA's sync debug mode warns on each; counted here.
    `count` stays None where there is nothing to count (CPU)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.count = device, None
        self._caught: list | None = None
        self._context = None

    def start(self) -> None:
        self._context = warnings.catch_warnings(record=True)
        self._caught = self._context.__enter__()
        warnings.simplefilter("always")
        if self.device.type == "cuda":
            torch.cuda.set_sync_debug_mode("warn")

    def stop(self) -> None:
        if self._context is None:
            return
        if self.device.type == "cuda":
            torch.cuda.set_sync_debug_mode("default")
        self._context.__exit__(None, None, None)
        syncs = sum(SYNC_WARNING in str(w.message) for w in self._caught)
        self.count = syncs if self.device.type == "cuda" or syncs else None
        self._context = None


def train_window(cfg, batches, warmup: int, steps: int, device: torch.device) -> dict:
    """The real train() with observer hooks: seconds of `steps` iterations, syncs in them (no log
    step falls inside), the fp16 loss scales seen, and the last metrics line."""
    from distgan.trainer import TrainHooks, train

    stream = runs.TimedStream(
        batches,
        runs.batch_index_of_iteration(cfg, warmup),
        runs.batch_index_of_iteration(cfg, warmup + steps),
        device,
    )
    counter, seen = SyncCounter(device), {"g_steps": 0, "scales": []}

    def after_g_step(backend) -> None:
        seen["g_steps"] += 1
        scale = backend.loss_scale()  # a device tensor: reading it here is not a sync
        if scale is not None:
            seen["scales"].append(scale.detach().clone())
        if seen["g_steps"] == warmup:
            counter.start()
        elif seen["g_steps"] == warmup + steps:
            counter.stop()

    with tempfile.TemporaryDirectory(prefix="distgan-gpu-") as tmp:
        total = warmup + steps + 1
        run_cfg = override(runs.bench_config(cfg, total, tmp), [f"log.every={total}"])
        runs.reset_accelerate()
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                code = train(
                    run_cfg, resume="never", stream=stream, hooks=TrainHooks(after_g_step=after_g_step)
                )
        finally:
            counter.stop()
            runs.reset_accelerate()
        lines = (Path(tmp) / "metrics.jsonl").read_text().splitlines()
    if code != 0:
        raise RuntimeError(f"train() returned {code}")
    scales = [float(s) for s in seen["scales"]]  # after the window: host reads are fine here
    return {
        "seconds": stream.seconds()[0],
        "syncs": counter.count,
        "scales": scales,
        "metrics": json.loads(lines[-1]) if lines else {},
    }


def measure(variant: Variant, args, device: torch.device) -> dict:
    out: dict = {"name": variant.name, "config": variant.config, "overrides": variant.overrides}
    cfg = load_config(variant.config, [*variant.overrides, *(variant.dry if args.dry_run else [])])
    notes = []
    if device.type == "cpu":  # a dry run: what CPU cannot run is built (validated) but run in fp32
        if cfg.train.mixed_precision == "fp16":
            notes.append("fp16 ran as fp32 (CPU)")
        if cfg.train.compile:
            notes.append("compile off (CPU dry run)")
        cpu_safe = ["train.compile=false"]
        if cfg.train.mixed_precision == "fp16":
            cpu_safe.append('train.mixed_precision="no"')
        cfg = override(cfg, cpu_safe)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = variant.tf32
        torch.cuda.reset_peak_memory_stats()
    batches = runs.load_batches(cfg, 4, True)
    torch._dynamo.reset()
    run = train_window(cfg, batches, args.warmup, args.steps, device)
    trainer_peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    reference_s = runs.time_reference(cfg, batches, args.warmup, args.steps, device)[0]
    images = runs.images_in_window(cfg, args.warmup, args.steps)
    ips = images / run["seconds"]
    flop = runs.model_flops_per_iteration(cfg, batches, device)
    achieved = flop * ips / runs.images_in_window(cfg, 0, 1) / 1e12
    peak = args.peak_tflops or next(
        (
            v
            for k, v in DENSE_PEAK_TFLOPS.items()
            if device.type == "cuda" and k in torch.cuda.get_device_name()
        ),
        None,
    )
    out.update(
        status="ok",
        images_per_sec=ips,
        reference_images_per_sec=images / reference_s,
        overhead_ratio=reference_s / run["seconds"],  # (a)/(b) throughput: > 1 means the trainer is faster
        peak_memory_mib=trainer_peak,
        model_gflop_per_iteration=flop / 1e9,
        achieved_tflops=achieved,
        mfu=achieved / peak if peak else None,
        syncs_per_iteration=None if run["syncs"] is None else run["syncs"] / args.steps,
        note="; ".join(notes),
    )
    if variant.overrides[0].endswith("fp16"):
        gp = run["metrics"].get("gp")
        scales = run["scales"]
        out["fp16"] = {
            "penalty_finite": gp is None or math.isfinite(gp),
            "gp": gp,
            "d_skipped_steps": run["metrics"].get("d_skipped_steps"),
            "scale_min": min(scales) if scales else None,
            "scale_last": scales[-1] if scales else None,
            "scale_stuck_at_floor": bool(scales) and scales[-1] < 1.0,  # collapsed and never came back
        }
    return out


def two_processes_on_one_gpu(args, device: torch.device) -> dict:
    """2 processes on one GPU must be refused with a clear message (exit 2), or train correctly."""
    if device.type != "cuda" or torch.cuda.device_count() != 1:
        return {"status": "skipped", "note": "needs exactly one GPU; the refusal is unit-tested on CPU"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "distgan.train", "--config", str(REPO / "configs/quickstart.yaml"), "train.steps=2",
               f"train.out_dir={tempfile.mkdtemp(prefix='distgan-gpu2-')}"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=REPO)
    last = (done.stderr.strip().splitlines() or [""])[-1]
    return {"status": "ok" if done.returncode in (0, 2) else "failed", "exit_code": done.returncode,
            "message": last[-300:]}  # fmt: skip


def fid_check(args, device: torch.device) -> dict:
    """fid10k's time on the GPU (dry run: 300 samples on CPU); a failure is reported, not raised."""
    samples = 300 if args.dry_run else 10_000
    print(f"[gpu check] fid ({samples} samples) ...", file=sys.stderr, flush=True)
    try:
        fd_dims = 64 if args.dry_run else 2048
        return {
            "status": "ok",
            **time_fid(MODELS["celeba_wgan"], samples, device, args.inception_weights, fd_dims),
        }
    except UserError as err:
        return {"status": "failed", "note": str(err)[:300]}
    except Exception as err:  # the other results must still be written
        return {"status": "failed", "note": f"{type(err).__name__}: {err}"[:300]}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m distgan.bench gpu", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "benchmarks/results/gpu_check.json")
    p.add_argument(
        "--dry-run", action="store_true", help="CPU: build every variant, run 1-2 steps, write the JSON"
    )
    p.add_argument("--steps", type=int, help="timed iterations per variant (default 20; dry run 1)")
    p.add_argument("--warmup", type=int, help="untimed iterations first (default 3; dry run 1)")
    p.add_argument("--budget-s", type=float, default=420.0, help="skip the remaining variants past this")
    p.add_argument("--peak-tflops", type=float, help="the card's dense bf16/fp16 peak (default: known GPUs)")
    p.add_argument("--inception-weights", help="TorchScript inception-2015-12-05.pt for the fid10k timing")
    args = p.parse_args(argv)
    args.steps = args.steps or (1 if args.dry_run else 20)
    args.warmup = args.warmup or (1 if args.dry_run else 3)
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.dry_run else "cpu")
    if device.type == "cpu" and not args.dry_run:
        print("error: no GPU visible; `python -m distgan.bench gpu --dry-run` checks the plumbing on CPU")
        return 2
    if device.type == "cpu":
        torch.set_num_threads(1)
    began = time.perf_counter()
    found, missing = variants()
    results = []
    for variant in found:
        if time.perf_counter() - began > args.budget_s:
            results.append(
                {"name": variant.name, "status": "skipped", "note": f"past --budget-s {args.budget_s}"}
            )
            continue
        print(f"[gpu check] {variant.name} ...", file=sys.stderr, flush=True)
        try:
            results.append(measure(variant, args, device))
        except UserError as err:
            return report(err)
        except Exception as err:  # one failing variant must not lose the others
            results.append(
                {"name": variant.name, "status": "failed", "note": f"{type(err).__name__}: {err}"[:300]}
            )
    result = {
        "schema": SCHEMA,
        "dry_run": args.dry_run,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "steps": args.steps,
        "warmup": args.warmup,
        "variants": results,
        "models_without_config": missing,
        "two_processes_one_gpu": two_processes_on_one_gpu(args, device),
        "fid": fid_check(args, device),
        "elapsed_s": time.perf_counter() - began,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    for r in results:
        shown = {
            k: r.get(k) for k in ("status", "images_per_sec", "overhead_ratio", "mfu", "syncs_per_iteration")
        }
        print(f"{r['name']:<34} {shown}")
    print(f"wrote {args.out} ({result['elapsed_s']:.0f} s)")
    return 0 if all(r["status"] != "failed" for r in results) else 1
