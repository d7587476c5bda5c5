"""Sample from a trained generator.

    python -m distgan.sample --checkpoint runs/quickstart --num 64 --out grid.png
    python -m distgan.sample --checkpoint runs/quickstart/checkpoints/step_0000400 --num 1000 --out s.npz

.npz contract (DESIGN.md): `images` uint8 (N, H, W, C) for image models, `points` float32 (N, 2)
for toy 2D models, and `labels` int64 (N,) for conditional models. .png: a grid to look at.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from distgan.errors import UserError, report
from distgan.generation import load_generator
from distgan.grids import samples_picture, save_png, to_uint8_images


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distgan.sample", description="Sample from a checkpoint.")
    parser.add_argument("--checkpoint", required=True, help="run directory or checkpoint directory")
    parser.add_argument("--num", type=int, required=True, help="number of samples")
    parser.add_argument("--out", required=True, help="output FILE.png (grid) or FILE.npz (arrays)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (same seed, same samples)")
    parser.add_argument("--no-ema", action="store_true", help="use the raw generator, not its EMA")
    parser.add_argument("--batch", type=int, default=500, help="samples generated per forward pass")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.suffix not in (".png", ".npz"):
        print(f"error: --out must end in .png or .npz, got {out.name}", file=sys.stderr)
        return 2
    if args.num < 1:
        print(f"error: --num must be >= 1, got {args.num}", file=sys.stderr)
        return 2
    try:
        generator = load_generator(args.checkpoint, ema=not args.no_ema)
    except UserError as err:  # not a checkpoint, or its config.yaml no longer validates
        return report(err)
    labels = torch.arange(args.num) % generator.num_classes if generator.is_conditional else None
    chunks = []
    for i, start in enumerate(range(0, args.num, args.batch)):
        chunk_labels = None if labels is None else labels[start : start + args.batch]
        n = min(args.batch, args.num - start)
        chunks.append(generator.sample(n, chunk_labels, seed=args.seed * 100_003 + i))
    samples = torch.cat(chunks)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".png":
        save_png(samples_picture(samples), out)
    else:
        arrays = {}
        if samples.dim() == 2:
            arrays["points"] = samples.float().numpy().astype(np.float32)
        else:
            arrays["images"] = to_uint8_images(samples)
        if labels is not None:
            arrays["labels"] = labels.numpy().astype(np.int64)
        np.savez(out, **arrays)
    print(f"wrote {args.num} samples to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
