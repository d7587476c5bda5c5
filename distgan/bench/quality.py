"""Quality benchmark: train shipped recipes over fixed seeds and score what comes out.

    python -m distgan.bench quality --recipes toy_ring,toy_grid,quickstart --seeds 5 \\
        --out benchmarks/results/quality.json
    python -m distgan.bench quality --recipes toy_ring --seeds 1 model.pack=2   # a variant
    python -m distgan.bench quality --recipes mnist_best --seeds 5 --jobs 2     # 2 seeds at a time

For each recipe (configs/NAME.yaml, or a YAML path) and seed S in 0..N-1: train through the real
`train()` in a fresh temporary run directory with train.seed=S (plus any KEY=VALUE overrides),
load the EMA generator with `distgan.load_generator`, draw samples and score them with
`distgan.metrics` -- toy mixtures: 2,500 samples, modes captured, high-quality share and reverse KL
(PacGAN protocol, `distgan.metrics.coverage`); images: 1,000 samples, FD/KID/precision/recall/class
coverage and KL on the dataset's extractor (the shipped MNIST classifier for 1-channel 28 px);
Stacked MNIST (data.source=stacked_mnist): 26,000 samples, the digit triples covered of 1,000 and
the KL of their histogram to uniform, each channel read by the MNIST classifier (`stacked_modes`).
Prints each seed and median/min/max per metric, writes JSON, and next to it a PNG of the first seed's
samples (`<stem>_<recipe>.png`): for toy recipes a scatter over the modes, for images a grid (64
images; conditional models 10 of each class, a column per class). Seeds are fixed in advance and
the metric code is the same for every recipe. `--jobs J` trains J seeds at a time in worker
processes (spawned, `--threads` each); a seed's result does not depend on which process ran it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from distgan.config import ExperimentConfig, load_config
from distgan.errors import UserError, report

TOY_SAMPLES = 2500  # PacGAN protocol
IMAGE_SAMPLES = 1000
GRID_SAMPLES = 64  # images in the picture of an image recipe's first seed (conditional: 10 per class)
SAMPLE_SEED = 20_000  # latent noise of the scored samples: never a training seed
IMAGE_METRICS = ["fd", "kid", "precision_recall", "class_coverage"]
STACKED_SAMPLES = 26_000  # Stacked MNIST: the count of VEEGAN's and PacGAN's tables
STACKED_METRICS = ["stacked_modes"]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m distgan.bench quality", description=__doc__.split("\n")[0])
    p.add_argument(
        "--recipes", default="toy_ring,toy_grid", help="comma list: configs/NAME.yaml or YAML paths"
    )
    p.add_argument("--seeds", type=int, default=5, help="train.seed = 0..N-1 per recipe")
    p.add_argument(
        "--out", type=Path, help="write the results as JSON here (and toy scatter PNGs next to it)"
    )
    p.add_argument(
        "--truncation",
        type=float,
        default=1.0,
        metavar="PSI",
        help="toy recipes: also score the same latents with the truncation trick at PSI (1 = off)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--jobs", type=int, default=1, help="seeds trained at a time, each in its own process")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides for every recipe")
    args = p.parse_args(argv)
    if args.seeds < 1:
        p.error(f"--seeds must be >= 1, got {args.seeds}")
    if args.jobs < 1:
        p.error(f"--jobs must be >= 1, got {args.jobs}")
    if not 0 < args.truncation <= 1:
        p.error(f"--truncation must be in (0, 1], got {args.truncation}")
    return args


def recipe_path(name: str) -> Path:
    path = Path(name) if name.endswith((".yaml", ".yml")) else Path("configs") / f"{name}.yaml"
    if not path.is_file():
        raise UserError(f"--recipes: {name!r} is neither configs/{name}.yaml nor a YAML file")
    return path


def score_toy(generator, cfg: ExperimentConfig, truncation: float = 1.0) -> tuple[dict, np.ndarray]:
    """PacGAN scores of TOY_SAMPLES samples and the points; with truncation < 1 also the scores of
    the same latents truncated (keys prefixed `truncated_`)."""
    from distgan.data.toy import toy_modes
    from distgan.metrics import mode_coverage

    means, std = toy_modes(cfg.data.path)
    latent = generator.latent(TOY_SAMPLES, seed=SAMPLE_SEED)  # what generator.sample(N, seed) draws
    with torch.no_grad():
        points = generator(latent).numpy()
        scores = mode_coverage(points, means, std)
        if truncation != 1.0:
            truncated = generator(generator.truncate(latent, truncation)).numpy()
            scores |= {f"truncated_{k}": v for k, v in mode_coverage(truncated, means, std).items()}
    return scores, points


def image_protocol(cfg: ExperimentConfig) -> tuple[list[str], int]:
    """The metrics and sample count an image recipe is scored with: Stacked MNIST's modes on 26,000
    samples, the others' metrics on 1,000."""
    from distgan.metrics import valid_metrics

    if cfg.data.source == "stacked_mnist":
        return STACKED_METRICS, STACKED_SAMPLES
    return [m for m in IMAGE_METRICS if m in valid_metrics(cfg)], IMAGE_SAMPLES


def score_images(generator, cfg: ExperimentConfig) -> dict:
    from distgan.data import evaluation_data
    from distgan.metrics import evaluate_generator

    metrics, num = image_protocol(cfg)
    real, modes = evaluation_data(cfg, IMAGE_SAMPLES)
    with torch.no_grad():
        result = evaluate_generator(generator, cfg, metrics, num, seed=SAMPLE_SEED, real=real, modes=modes)
    return scores_to_report(result)


def scores_to_report(result: dict) -> dict:
    """The metric values, once each: the count-named keys (fd1k_...), not their short aliases (fd_...),
    without the bookkeeping (sample seeds and counts) or KID's std; the training seed is the row's own."""
    named = [k for k in result if re.search(r"\dk_", k)]
    aliases = {re.sub(r"\d+k_", "_", k) for k in named}
    return {
        k: v
        for k, v in result.items()
        if isinstance(v, (int, float))
        and not isinstance(v, bool)
        and k not in aliases
        and k not in ("seed", "reference_seed")
        and not k.startswith("num_")
        and "_std" not in k
    }


def run_one(
    path: Path, seed: int, overrides: list[str], truncation: float = 1.0
) -> tuple[dict, np.ndarray | torch.Tensor, ExperimentConfig]:
    """Train recipe `path` with train.seed=seed in a fresh directory: its scores and wall time, and what
    to show (toy points, or a grid's worth of images)."""
    from distgan.bench.runs import reset_accelerate
    from distgan.generation import load_generator
    from distgan.trainer import train

    with tempfile.TemporaryDirectory(prefix="distgan_quality_") as run_dir:
        cfg = load_config(str(path), [*overrides, f"train.out_dir={run_dir}", f"train.seed={seed}"])
        reset_accelerate()
        start, cpu_start = time.perf_counter(), time.process_time()
        code = train(cfg, resume="never")
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        if code != 0:
            raise RuntimeError(f"{path} seed {seed}: train() returned exit code {code}")
        generator = load_generator(run_dir)  # EMA weights when the run has them
        if cfg.data.is_toy:
            scores, shown = score_toy(generator, cfg, truncation)
        else:
            scores = score_images(generator, cfg)
            with torch.no_grad():
                shown = generator.sample(10 * generator.num_classes or GRID_SAMPLES, seed=SAMPLE_SEED)
    # CPU time is the load-robust twin of wall time on a shared machine (one thread: the work done)
    return {"seed": seed, "wall_s": wall, "cpu_s": cpu, **scores}, shown, cfg


def run_seeds(path: Path, args: argparse.Namespace) -> Iterator[tuple[dict, object, ExperimentConfig]]:
    """run_one for seeds 0..N-1, in seed order; with --jobs > 1 in spawned worker processes."""
    if args.jobs == 1:
        for seed in range(args.seeds):
            yield run_one(path, seed, args.overrides, args.truncation)
        return
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch or accelerate state
    with ProcessPoolExecutor(
        args.jobs, mp_context=spawn, initializer=set_threads, initargs=(args.threads,)
    ) as pool:
        futures = [
            pool.submit(run_one, path, seed, args.overrides, args.truncation) for seed in range(args.seeds)
        ]
        for future in futures:
            yield future.result()


def set_threads(threads: int) -> None:
    if threads:
        torch.set_num_threads(threads)


def save_picture(shown, cfg: ExperimentConfig, path: Path) -> None:
    """Toy points as a scatter over the modes; images as the sample grid `distgan.sample` writes."""
    if cfg.data.is_toy:
        from distgan.data.toy import toy_modes

        scatter_png(shown, *toy_modes(cfg.data.path), path)
    else:
        from distgan.grids import samples_picture, save_png

        save_png(samples_picture(shown, cfg.model.num_classes), path)


def summarise(rows: list[dict]) -> dict[str, dict]:
    keys = [k for k in rows[0] if k != "seed"]
    return {
        k: {
            "median": statistics.median(r[k] for r in rows),
            "min": min(r[k] for r in rows),
            "max": max(r[k] for r in rows),
        }
        for k in keys
    }


def format_table(name: str, rows: list[dict], summary: dict[str, dict]) -> str:
    keys = list(summary)
    head = ["seed", *keys]
    lines = [f"== {name}", "  ".join(f"{h:>14}" for h in head)]
    fmt = lambda v: f"{v:14.4g}" if isinstance(v, float) else f"{v:>14}"  # noqa: E731
    for r in rows:
        lines.append("  ".join(fmt(r[h]) for h in head))
    for stat in ("median", "min", "max"):
        lines.append("  ".join([f"{stat:>14}", *(fmt(summary[k][stat]) for k in keys)]))
    return "\n".join(lines)


def scatter_png(points: np.ndarray, means: np.ndarray, std: float, path: Path, size: int = 512) -> None:
    """Samples as dark dots over the modes' 3-std (high-quality) circles in red, drawn with PIL."""
    from PIL import Image, ImageDraw

    half = float(np.abs(means).max()) * 1.5 + 0.5  # modes plus a margin; points outside are clipped
    to_px = lambda xy: ((xy[..., 0] + half) / (2 * half) * size, (half - xy[..., 1]) / (2 * half) * size)  # noqa: E731
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    radius = 3 * std / (2 * half) * size
    for cx, cy in zip(*to_px(means), strict=True):
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], outline=(220, 30, 30), width=1)
    for x, y in zip(*to_px(points), strict=True):
        draw.rectangle([x - 0.5, y - 0.5, x + 0.5, y + 0.5], fill=(20, 40, 160))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    set_threads(args.threads)
    try:
        recipes = {name: recipe_path(name) for name in args.recipes.split(",") if name}
        for name, path in recipes.items():  # every config error before any training
            if not load_config(str(path), args.overrides).data.is_toy and args.truncation != 1.0:
                raise UserError(
                    f"--truncation: {name} is an image recipe; truncation is scored for toy recipes only"
                )
    except UserError as err:
        return report(err)
    results = {}
    for name, path in recipes.items():
        rows = []
        for seed, (row, shown, cfg) in enumerate(run_seeds(path, args)):
            rows.append(row)
            print(f"{name} seed {seed}: " + ", ".join(f"{k}={v:.4g}" for k, v in row.items()), flush=True)
            if seed == 0 and args.out:
                save_picture(shown, cfg, args.out.with_name(f"{args.out.stem}_{name}.png"))
        summary = summarise(rows)
        print(format_table(name, rows, summary), flush=True)
        results[name] = {"config": str(path), "seeds": rows, "summary": summary}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        environment = {
            "cpu_count": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "jobs": args.jobs,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "overrides": args.overrides,
            "truncation": args.truncation,
            "toy_samples": TOY_SAMPLES,
            "image_samples": IMAGE_SAMPLES,
            "stacked_samples": STACKED_SAMPLES,
        }
        args.out.write_text(json.dumps({"environment": environment, "recipes": results}, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
