"""Sample from a trained generator.

    python -m distgan.sample --checkpoint runs/quickstart --num 64 --out grid.png
    python -m distgan.sample --checkpoint runs/quickstart/checkpoints/step_0000400 --num 1000 --out s.npz
    python -m distgan.sample --checkpoint runs/quickstart --num 64 --truncation 0.7 --out typical.png
    python -m distgan.sample --checkpoint runs/quickstart --num 6 --interpolate 10 --out walk.png  # + walk.gif
    python -m distgan.sample --checkpoint runs/mnist_cgan --num 8 --labels --out classes.png        # a row per class
    python -m distgan.sample --checkpoint me/mnist-dcgan --num 16 --out hub.png                     # a Hub repo id

--checkpoint: a run directory, a checkpoint directory, an exported folder or a Hub repo id.
--truncation PSI (0..1, default 1 = off): latents pulled toward the mean by PSI.
--interpolate K: --num rows, each K steps between two random latents (spherical interpolation);
  .png: the grid (one row per walk) and an animated GIF next to it; .npz: the images row by row.
--labels [C ...] (conditional models): one row per class (all classes, or those given), --num
  samples per row; every row uses the same latents.
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
from distgan.sampling import chunked_latents, class_rows, generate, interpolation_latents, truncate


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m distgan.sample", description="Sample from a checkpoint.")
    parser.add_argument(
        "--checkpoint", required=True, help="run dir, checkpoint dir, export folder or Hub id"
    )
    parser.add_argument(
        "--num", type=int, required=True, help="samples (--interpolate: rows; --labels: per row)"
    )
    parser.add_argument("--out", required=True, help="output FILE.png (grid) or FILE.npz (arrays)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (same seed, same samples)")
    parser.add_argument("--no-ema", action="store_true", help="use the raw generator, not its EMA")
    parser.add_argument("--batch", type=int, default=500, help="samples generated per forward pass")
    parser.add_argument("--truncation", type=float, default=1.0, metavar="PSI", help="0..1, 1 = off")
    parser.add_argument("--interpolate", type=int, metavar="K", help="K-step latent walks, one per row")
    parser.add_argument("--labels", type=int, nargs="*", metavar="C", help="one row per class (default all)")
    return parser


def _check(args: argparse.Namespace, out: Path) -> str | None:
    """The first problem with the arguments alone (before the generator is loaded), or None."""
    if out.suffix not in (".png", ".npz"):
        return f"--out must end in .png or .npz, got {out.name}"
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
    return None


def _check_model(args: argparse.Namespace, generator) -> str | None:
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
    classes = (args.labels or list(range(generator.num_classes))) if generator.is_conditional else []
    cols = None
    if args.interpolate is not None:
        cols = args.interpolate
        latent = interpolation_latents(generator, args.num, cols, args.seed)
        row_labels = [classes[r % len(classes)] if classes else 0 for r in range(args.num)]
        labels = torch.tensor(row_labels).repeat_interleave(cols)
    elif args.labels is not None:
        cols = args.num
        latent, labels = class_rows(generator, classes, args.num, args.seed, args.batch)
    else:
        latent = chunked_latents(generator, args.num, args.seed, args.batch)
        labels = torch.arange(args.num) % max(generator.num_classes, 1)
    labels = labels if generator.is_conditional else None
    samples = generate(generator, truncate(generator, latent, args.truncation), labels, args.batch)

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


def _walk_frames(samples: torch.Tensor, rows: int, steps: int) -> list[np.ndarray]:
    """One frame per step (all walks side by side), there and back again so the GIF loops smoothly."""
    walks = samples.reshape(rows, steps, *samples.shape[1:])
    cols = math.ceil(math.sqrt(rows))
    frames = [image_grid(walks[:, k], cols=cols) for k in range(steps)]
    return frames + frames[-2:0:-1]


if __name__ == "__main__":
    sys.exit(main())
