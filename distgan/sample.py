"""Sample from a trained generator.

    python -m distgan.sample --checkpoint runs/quickstart --num 64 --out grid.png
    python -m distgan.sample --checkpoint runs/quickstart/checkpoints/step_0000400 --num 1000 --out s.npz
    python -m distgan.sample --checkpoint runs/quickstart --num 64 --truncation 0.7 --out typical.png
    python -m distgan.sample --checkpoint runs/quickstart --num 6 --interpolate 10 --out walk.png  # + walk.gif
    python -m distgan.sample --checkpoint runs/mnist_cgan --num 8 --labels --out classes.png        # a row per class
    python -m distgan.sample --checkpoint me/mnist-dcgan --num 16 --out hub.png                     # a Hub repo id
    python -m distgan.sample --checkpoint runs/ffhq256 --style-mix 4 6 --out mix.png               # stylegan2
    python -m distgan.sample --checkpoint runs/ffhq256 --num 4 --interpolate 8 --interpolate-in w --out w.png

--checkpoint: a run directory, a checkpoint directory, an exported folder or a Hub repo id.
--truncation PSI (0..1, default 1 = off): latents pulled toward the mean by PSI; for stylegan2 the
  w's pulled toward the average w tracked in training (one average over all classes of a
  conditional model, as the official code: at PSI 0 every latent and label gives the same image).
--interpolate K: --num rows, each K steps between two random latents (spherical interpolation in
  z; `--interpolate-in w`, stylegan2: a straight line between the two ends' w's);
  .png: the grid (one row per walk) and an animated GIF next to it; .npz: the images row by row.
--labels [C ...] (conditional models): one row per class (all classes, or those given), --num
  samples per row; every row uses the same latents.
--style-mix ROWS COLS (stylegan2, .png, no --num): the style-mixing figure. COLS sources along the
  top, ROWS sources down the left (the ROWS + COLS latents of --seed, columns first); cell (r, c)
  has column c's coarse styles (its first --coarse-ws w's, default half of them: the 4 to 32 px
  layers at 256 px) and row r's fine ones. A conditional model's source k draws class k mod classes.
.npz contract (DESIGN.md): `images` uint8 (N, H, W, C) for image models, `points` float32 (N, 2)
for toy 2D models, and `labels` int64 (N,) for conditional models. .png: a grid to look at.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

from distgan.config.sections import SEED_LIMIT
from distgan.errors import UserError, report
from distgan.generation import load_generator
from distgan.grids import image_grid, samples_picture, save_gif, save_png, to_uint8_images
from distgan.sampling import (
    chunked_latents,
    class_rows,
    generate,
    has_w_space,
    interpolation_latents,
    style_mix_grid,
    w_interpolation_latents,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m distgan.sample", description="Sample from a checkpoint.")
    parser.add_argument(
        "--checkpoint", required=True, help="run dir, checkpoint dir, export folder or Hub id"
    )
    parser.add_argument(
        "--num", type=int, help="samples (--interpolate: rows; --labels: per row); not with --style-mix"
    )
    parser.add_argument("--out", required=True, help="output FILE.png (grid) or FILE.npz (arrays)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (same seed, same samples)")
    parser.add_argument("--no-ema", action="store_true", help="use the raw generator, not its EMA")
    parser.add_argument("--batch", type=int, default=500, help="samples generated per forward pass")
    parser.add_argument("--truncation", type=float, default=1.0, metavar="PSI", help="0..1, 1 = off")
    parser.add_argument("--interpolate", type=int, metavar="K", help="K-step latent walks, one per row")
    parser.add_argument(
        "--interpolate-in", choices=("z", "w"), default="z", help="walk in z (slerp) or in W (stylegan2)"
    )
    parser.add_argument("--labels", type=int, nargs="*", metavar="C", help="one row per class (default all)")
    parser.add_argument(
        "--style-mix", type=int, nargs=2, metavar=("ROWS", "COLS"), help="stylegan2: a style-mixing grid"
    )
    parser.add_argument(
        "--coarse-ws",
        type=int,
        metavar="K",
        help="--style-mix: w's taken from the column source (default half)",
    )
    return parser


def _check(args: argparse.Namespace, out: Path) -> str | None:
    """The first problem with the arguments alone (before the generator is loaded), or None."""
    if out.suffix not in (".png", ".npz"):
        return f"--out must end in .png or .npz, got {out.name}"
    if args.style_mix is not None:
        return _check_style_mix(args, out)
    if args.coarse_ws is not None:
        return "--coarse-ws sets the split of a --style-mix grid; add --style-mix ROWS COLS"
    if args.num is None:
        return "--num N is required (except with --style-mix)"
    if args.num < 1:
        return f"--num must be >= 1, got {args.num}"
    if args.batch < 1:
        return f"--batch must be >= 1, got {args.batch}"
    if not 0 <= args.seed < SEED_LIMIT:
        return f"--seed must be in [0, 2**32 - 1], got {args.seed}"
    if not 0.0 <= args.truncation <= 1.0:
        return f"--truncation must be in [0, 1] (1 = off, smaller = closer to the mean latent), got {args.truncation}"
    if args.interpolate is not None and args.interpolate < 2:
        return f"--interpolate must be >= 2 steps (both ends included), got {args.interpolate}"
    if args.interpolate_in == "w" and args.interpolate is None:
        return "--interpolate-in w sets the space of an --interpolate walk; add --interpolate K"
    return None


def _check_style_mix(args: argparse.Namespace, out: Path) -> str | None:
    rows, cols = args.style_mix
    walk = args.interpolate is not None or args.interpolate_in != "z"
    if args.num is not None or walk or args.labels is not None:
        return "--style-mix ROWS COLS draws its own grid: drop --num, --interpolate(-in) and --labels"
    if rows < 1 or cols < 1:
        return f"--style-mix ROWS COLS must both be >= 1, got {rows} {cols}"
    if out.suffix != ".png":
        return f"--style-mix draws a figure: --out must end in .png, got {out.name}"
    return None


def _check_model(args: argparse.Namespace, generator) -> str | None:
    needs_w = "--style-mix" if args.style_mix is not None else None
    needs_w = needs_w or ("--interpolate-in w" if args.interpolate_in == "w" else None)
    if needs_w and not has_w_space(generator):
        return (
            f"{needs_w} needs a generator with a W space (model.arch=stylegan2); "
            f"this checkpoint's is {type(generator).__name__}"
        )
    if args.coarse_ws is not None and not 1 <= args.coarse_ws < generator.num_ws:
        return (
            f"--coarse-ws must be in [1, {generator.num_ws - 1}] (this generator has "
            f"{generator.num_ws} w's), got {args.coarse_ws}"
        )
    if args.interpolate is not None and len(generator.sample_shape) != 3:
        return "--interpolate draws image grids; this checkpoint makes toy 2D points"
    if args.labels is not None:
        if not generator.is_conditional:
            return (
                "--labels needs a class-conditional model (model.num_classes > 0); this one is unconditional"
            )
        bad = [c for c in args.labels if not 0 <= c < generator.num_classes]
        if bad:
            return f"--labels: {bad} outside the model's classes; valid: 0..{generator.num_classes - 1}"
    return None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out = Path(args.out)
    problem = _check(args, out)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        generator = load_generator(args.checkpoint, ema=not args.no_ema)
    except UserError as err:  # not a checkpoint, or its config.yaml no longer validates
        return report(err)
    problem = _check_model(args, generator)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.style_mix is not None:
        return _style_mix(args, generator, out)
    classes = (args.labels or list(range(generator.num_classes))) if generator.is_conditional else []
    cols = None
    if args.interpolate is not None:
        cols = args.interpolate
        row_labels = torch.tensor([classes[r % len(classes)] if classes else 0 for r in range(args.num)])
        if args.interpolate_in == "w":
            walk_labels = row_labels if generator.is_conditional else None
            latent = w_interpolation_latents(generator, args.num, cols, args.seed, walk_labels, args.batch)
        else:
            latent = interpolation_latents(generator, args.num, cols, args.seed)
        labels = row_labels.repeat_interleave(cols)
    elif args.labels is not None:
        cols = args.num
        latent, labels = class_rows(generator, classes, args.num, args.seed, args.batch)
    else:
        latent = chunked_latents(generator, args.num, args.seed, args.batch)
        labels = torch.arange(args.num) % max(generator.num_classes, 1)
    labels = labels if generator.is_conditional else None
    samples = generate(generator, latent, labels, args.batch, args.truncation)

    out.parent.mkdir(parents=True, exist_ok=True)
    written = [out]
    if out.suffix == ".png":
        save_png(image_grid(samples, cols=cols) if cols else samples_picture(samples), out)
        if args.interpolate is not None:
            written.append(save_gif(_walk_frames(samples, args.num, cols), out.with_suffix(".gif")))
    else:
        arrays = {}
        if samples.dim() == 2:
            arrays["points"] = samples.float().numpy().astype(np.float32)
        else:
            arrays["images"] = to_uint8_images(samples)
        if labels is not None:
            arrays["labels"] = labels.numpy().astype(np.int64)
        np.savez(out, **arrays)
    print(f"wrote {len(samples)} samples to {' and '.join(str(p) for p in written)}")
    return 0


def _style_mix(args: argparse.Namespace, generator, out: Path) -> int:
    rows, cols = args.style_mix
    coarse = args.coarse_ws or generator.num_ws // 2
    grid = style_mix_grid(generator, rows, cols, args.seed, coarse, args.truncation, args.batch)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_png(image_grid(grid, cols=cols + 1), out)
    print(f"wrote a {rows} x {cols} style-mixing grid (coarse w's 0-{coarse - 1} from the columns) to {out}")
    return 0


def _walk_frames(samples: torch.Tensor, rows: int, steps: int) -> list[np.ndarray]:
    """One frame per step (all walks side by side), there and back again so the GIF loops smoothly."""
    walks = samples.reshape(rows, steps, *samples.shape[1:])
    cols = math.ceil(math.sqrt(rows))
    frames = [image_grid(walks[:, k], cols=cols) for k in range(steps)]
    return frames + frames[-2:0:-1]


if __name__ == "__main__":
    sys.exit(main())
