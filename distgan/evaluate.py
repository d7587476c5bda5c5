"""Evaluate a trained generator: print a table of metrics and write them as JSON.

    python -m distgan.evaluate --checkpoint runs/quickstart
    python -m distgan.evaluate --checkpoint runs/toy_grid --metrics fd mode_coverage --num 2500
    python -m distgan.evaluate --checkpoint runs/celeba --extractor inception \
        --inception-weights ~/inception-2015-12-05.pt --num 10000 --out celeba_eval.json
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 -m distgan.evaluate \
        --checkpoint runs/quickstart          # each process generates and embeds its share

--checkpoint: a run directory (its latest checkpoint) or one checkpoint directory.
--metrics: default all that apply to the run's data (see `distgan.metrics.valid_metrics`).
--out: default <run dir>/eval/<checkpoint name>.json (e.g. runs/quickstart/eval/step_0001500.json),
or <checkpoint dir>/eval.json for a checkpoint directory outside a run directory.
Results depend on (checkpoint, --num, --seed), not on the number of processes.
Metric names, extractor and weights are checked before anything is generated; a
mistake exits with status 2 and a message listing what is valid.
This is the only metrics code that imports accelerate.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from distgan.checkpoint import read_meta, resolve_checkpoint
from distgan.config import EVAL_EXTRACTORS, ExperimentConfig
from distgan.data import evaluation_data, toy_modes
from distgan.distributed import check_world
from distgan.errors import UserError, report
from distgan.generation import load_generator, load_run_config
from distgan.metrics import (
    MetricsError,
    default_reference_dir,
    evaluate_generator,
    plan_evaluation,
    prepare_evaluation,
    valid_metrics,
)


def default_out(checkpoint: Path) -> Path:
    if checkpoint.parent.name == "checkpoints":
        return checkpoint.parent.parent / "eval" / f"{checkpoint.name}.json"
    return checkpoint / "eval.json"


def format_table(results: dict[str, Any]) -> str:
    width = max(len(key) for key in results)
    lines = []
    for key, value in results.items():
        text = f"{value:.6g}" if isinstance(value, float) else str(value)
        lines.append(f"{key:<{width}}  {text}")
    return "\n".join(lines)


def _prepare(args: argparse.Namespace) -> tuple[Path, ExperimentConfig, list[str], int]:
    """Everything that can be wrong with the request, checked before any process group or sample."""
    checkpoint = resolve_checkpoint(args.checkpoint)
    cfg = load_run_config(checkpoint)
    overrides = {}
    if args.extractor is not None:
        overrides["extractor"] = args.extractor
    if args.inception_weights is not None:
        weights = args.inception_weights
        overrides["inception_weights"] = weights if weights == "auto" else str(Path(weights).expanduser())
    if args.reference_dir is not None:
        overrides["reference_dir"] = args.reference_dir
    cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, **overrides))
    metrics = args.metrics or valid_metrics(cfg)
    num = args.num if args.num is not None else cfg.eval.num
    if num < 2:
        raise MetricsError(f"--num must be >= 2, got {num}")
    plan_evaluation(cfg, metrics)
    return checkpoint, cfg, metrics, num


def _accelerator():
    import torch
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    check_world(accelerator)  # the same refusal as training: N launched processes, N worlds of 1
    return accelerator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distgan.evaluate", description="Evaluate a checkpoint.")
    parser.add_argument("--checkpoint", required=True, help="run directory or checkpoint directory")
    parser.add_argument("--metrics", nargs="+", help="metrics to compute (default: all that apply)")
    parser.add_argument("--num", type=int, help="generated and real samples (default: eval.num of the run)")
    parser.add_argument("--out", help="JSON file to write (default: <run dir>/eval/<checkpoint>.json)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (same seed, same samples)")
    parser.add_argument("--extractor", choices=EVAL_EXTRACTORS, help="feature extractor (default: the run's)")
    parser.add_argument(
        "--inception-weights",
        help="TorchScript FID Inception file inception-2015-12-05.pt, or auto (distgan[fid])",
    )
    parser.add_argument("--no-ema", action="store_true", help="evaluate the raw generator, not its EMA")
    parser.add_argument("--reference-dir", help="cache of real references (default: eval.reference_dir)")
    parser.add_argument(
        "--no-reference-cache", action="store_true", help="recompute the real side every time"
    )
    args = parser.parse_args(argv)
    try:
        return evaluate(args)
    except UserError as err:  # every rank fails the same way before any sample: no rank hangs
        return report(err)


def evaluate(args: argparse.Namespace) -> int:
    checkpoint, cfg, metrics, num = _prepare(args)
    accelerator = _accelerator()
    rank, world_size, device = accelerator.process_index, accelerator.num_processes, accelerator.device
    modes = toy_modes(cfg.data.path) if cfg.data.is_toy else None
    cache_dir = None if args.no_reference_cache else default_reference_dir(cfg)
    # The real sample is read only when the reference cache holds none for this key.
    reference = prepare_evaluation(
        cfg, metrics, num, rank, world_size, accelerator.gather, device,
        real=lambda: evaluation_data(cfg, num)[0], modes=modes, cache_dir=cache_dir,
    )  # fmt: skip
    generator = load_generator(checkpoint, ema=not args.no_ema, device=device)
    results = evaluate_generator(
        generator, cfg, metrics, num, rank, world_size, accelerator.gather, device,
        seed=args.seed, reference=reference,
    )  # fmt: skip
    if accelerator.is_main_process:
        step = read_meta(checkpoint).get("step")
        results = {"checkpoint": str(checkpoint), "step": step, **results, "metrics": list(metrics)}
        results["world_size"] = accelerator.num_processes
        out = Path(args.out) if args.out else default_out(checkpoint)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(format_table(results))
        print(f"wrote {out}")
    accelerator.wait_for_everyone()
    return 0


if __name__ == "__main__":
    sys.exit(main())
