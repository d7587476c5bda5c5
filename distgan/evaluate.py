"""Evaluate a trained generator: print a table of metrics and write them as JSON.

    python -m distgan.evaluate --checkpoint runs/quickstart
    python -m distgan.evaluate --checkpoint runs/toy_grid --metrics fd mode_coverage --num 2500
    python -m distgan.evaluate --checkpoint runs/celeba --extractor inception \
        --inception-weights ~/inception-2015-12-05.pt --num 10000 --out celeba_eval.json
    python -m distgan.evaluate --checkpoint runs/celeba --metrics fd --num 50000 --reference full \
        --inception-weights ~/inception-2015-12-05.pt --export-stats celeba_train.npz   # fid50k_full
    python -m distgan.evaluate --checkpoint me/celeba-gan --metrics fd --reference celeba_train.npz ...
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 -m distgan.evaluate \
        --checkpoint runs/quickstart          # each process generates and embeds its share

--checkpoint: a run directory (its latest checkpoint), one checkpoint directory, an exported
folder (`python -m distgan.export`) or a Hub repo id owner/name.
--metrics: default all that apply to the run's data and extractor (`distgan.metrics.valid_metrics`).
--reference: the real side: N rows drawn at random (default --num), full (the whole split, streamed
once; keys say `_full`), or FILE.npz with mu and sigma (pytorch-fid / clean-fid layout; FD only).
--export-stats FILE.npz: write the real side's mu and sigma in that layout.
--out: default <run dir>/eval/<checkpoint name>.json (e.g. runs/quickstart/eval/step_0001500.json),
<checkpoint dir>/eval.json for a checkpoint directory outside a run directory, eval/<folder>.json
(in the current directory) for an exported folder and eval/<owner>--<name>.json for a Hub id.
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
from distgan.config import EVAL_EXTRACTORS, ConfigError, ExperimentConfig
from distgan.data import evaluation_stream, toy_modes
from distgan.distributed import check_world
from distgan.errors import UserError, report
from distgan.files import write_atomic
from distgan.generation import generator_files, load_generator
from distgan.hub import is_export_dir, is_repo_id
from distgan.metrics import (
    MetricsError,
    default_metrics,
    default_reference_dir,
    evaluate_generator,
    plan_evaluation,
    prepare_evaluation,
    save_stats,
)
from distgan.metrics.plan import check_sample_counts


def default_out(checkpoint: Path) -> Path:
    if checkpoint.parent.name == "checkpoints":
        return checkpoint.parent.parent / "eval" / f"{checkpoint.name}.json"
    return checkpoint / "eval.json"


def _source(text: str) -> tuple[Path | None, Path | None]:
    """(checkpoint directory, folder) of --checkpoint: a checkpoint, or an export / Hub folder (None)."""
    if is_repo_id(text) or is_export_dir(Path(text)):
        return None, None if is_repo_id(text) else Path(text)
    return resolve_checkpoint(text), None


def _out_path(args: argparse.Namespace, checkpoint: Path | None, folder: Path | None) -> Path:
    if args.out:
        return Path(args.out)
    if checkpoint is not None:
        return default_out(checkpoint)
    # An exported folder keeps its own eval.json (the model card's numbers): results go beside it.
    name = folder.resolve().name if folder is not None else args.checkpoint.replace("/", "--")
    return Path("eval") / f"{name}.json"


def _write_json(path: Path, results: dict) -> None:
    """Through a temporary name: never half a file, never through a link planted at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(results, indent=2) + "\n")


def format_table(results: dict[str, Any]) -> str:
    width = max(len(key) for key in results)
    lines = []
    for key, value in results.items():
        text = f"{value:.6g}" if isinstance(value, float) else str(value)
        lines.append(f"{key:<{width}}  {text}")
    return "\n".join(lines)


def _prepare(args: argparse.Namespace) -> tuple[ExperimentConfig, list[str], int]:
    """Everything that can be wrong with the request, checked before any process group or sample."""
    cfg, _ = generator_files(args.checkpoint, ema=not args.no_ema)  # a Hub id is fetched (or read cached)
    if args.split is not None:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, split=args.split))
    overrides = {}
    if args.extractor is not None:
        overrides["extractor"] = args.extractor
    if args.inception_weights is not None:
        weights = args.inception_weights
        overrides["inception_weights"] = weights if weights == "auto" else str(Path(weights).expanduser())
    if args.reference_dir is not None:
        overrides["reference_dir"] = args.reference_dir
    if args.reference is not None:
        overrides["reference"] = args.reference
    if args.resize is not None:
        overrides["resize"] = args.resize
    num = args.num if args.num is not None else cfg.eval.num
    if num < 2:
        raise MetricsError(f"--num must be >= 2, got {num}")
    eval_section = dataclasses.replace(cfg.eval, **overrides, num=num)
    try:
        eval_section.validate()
    except ConfigError as err:  # name the flag the user typed, not the config key
        raise MetricsError(str(err).replace("eval.reference", "--reference", 1)) from None
    cfg = dataclasses.replace(cfg, eval=eval_section)
    metrics = args.metrics or default_metrics(cfg)
    plan = plan_evaluation(cfg, metrics)
    check_sample_counts(plan, num, cfg.eval.reference_count() or None, "--num / --reference")
    if args.export_stats:
        if str(cfg.eval.reference).endswith(".npz"):
            raise MetricsError("--export-stats writes the statistics of rows read from the data; "
                               "--reference is already a .npz file")  # fmt: skip
        target = Path(args.export_stats).expanduser()
        if target.exists() or target.suffix != ".npz":
            raise MetricsError(f"--export-stats: {target} must be a new file ending in .npz")
    return cfg, metrics, num


def _accelerator():
    import torch
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    check_world(accelerator)  # the same refusal as training: N launched processes, N worlds of 1
    return accelerator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distgan.evaluate", description="Evaluate a checkpoint.")
    parser.add_argument(
        "--checkpoint", required=True, help="run dir, checkpoint dir, exported folder or Hub id owner/name"
    )
    parser.add_argument("--metrics", nargs="+", help="metrics to compute (default: all that apply)")
    parser.add_argument("--num", type=int, help="generated samples (default: eval.num of the run)")
    parser.add_argument(
        "--reference",
        help="real side: N random rows (default: --num), full (the whole split) or FILE.npz (mu, sigma)",
    )
    parser.add_argument("--split", help="dataset split of the real side (default: data.split of the run)")
    parser.add_argument("--export-stats", metavar="FILE.npz", help="write the real side's mu and sigma")
    parser.add_argument("--resize", choices=("legacy", "clean"), help="resize to Inception's 299 px")
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
    cfg, metrics, num = _prepare(args)
    checkpoint, folder = _source(args.checkpoint)
    accelerator = _accelerator()
    rank, world_size, device = accelerator.process_index, accelerator.num_processes, accelerator.device
    modes = toy_modes(cfg.data.path) if cfg.data.is_toy else None
    cache_dir = None if args.no_reference_cache else default_reference_dir(cfg)
    count = cfg.eval.reference_count()  # rows (None: the whole split); --num is eval.num here
    # The real rows are read only when the reference cache holds none for this key.
    reference = prepare_evaluation(
        cfg, metrics, num, rank, world_size, accelerator.gather, device,
        real_stream=evaluation_stream(cfg, count), modes=modes, cache_dir=cache_dir,
    )  # fmt: skip
    if args.export_stats and accelerator.is_main_process:
        print(f"wrote {save_stats(args.export_stats, *reference.real_stats)}")
    generator = load_generator(args.checkpoint, ema=not args.no_ema, device=device)
    results = evaluate_generator(
        generator, cfg, metrics, num, rank, world_size, accelerator.gather, device,
        seed=args.seed, reference=reference,
    )  # fmt: skip
    if accelerator.is_main_process:
        step = read_meta(checkpoint).get("step") if checkpoint is not None else None
        where = str(checkpoint or folder or args.checkpoint)
        results = {"checkpoint": where, "step": step, **results, "metrics": list(metrics)}
        results["world_size"] = accelerator.num_processes
        out = _out_path(args, checkpoint, folder)
        _write_json(out, results)
        print(format_table(results))
        print(f"wrote {out}")
    accelerator.wait_for_everyone()
    return 0


if __name__ == "__main__":
    sys.exit(main())
