"""What D sees: which ops, with which probability, drawn from which random stream.

`draw(cfg, n, side, p, device)` draws one augmentation of n images of side `side`: every op in
`augment.ops` is applied to each sample with probability p (DiffAugment: p = 1; ADA: the
adaptive p), with DiffAugment's parameter ranges. All ops' parameters are drawn every time, so
the random stream advances the same way whichever ops are on. Randomness comes from the torch
generator given (default: the device's global one, which checkpoints restore on every rank).
"""

from __future__ import annotations

import torch

from distgan.augment.ops import AugmentParams
from distgan.config import AugmentConfig


def _uniform(n, low, high, device, generator):
    return torch.rand(n, device=device, generator=generator) * (high - low) + low


def _integers(n, low, high, device, generator):
    """Integers in [low, high), shape (n, 2)."""
    return torch.randint(low, high, (n, 2), device=device, generator=generator)


def draw(
    cfg: AugmentConfig, n: int, side: int, p: float, device, generator: torch.Generator | None = None
) -> AugmentParams:
    """Per-sample parameters; an op is on for a sample with probability p (and in cfg.ops)."""
    on = {op: (torch.rand(n, device=device, generator=generator) < p) & (op in cfg.ops) for op in
          ("xflip", "color", "translation", "cutout")}  # fmt: skip
    flip = torch.rand(n, device=device, generator=generator) < 0.5
    bright = _uniform(n, -0.5, 0.5, device, generator)
    sat = _uniform(n, 0.0, 2.0, device, generator)
    con = _uniform(n, 0.5, 1.5, device, generator)
    reach = int(side * cfg.translation + 0.5)  # DiffAugment: shifts in [-side/8, side/8]
    shift = _integers(n, -reach, reach + 1, device, generator)
    size = int(side * cfg.cutout + 0.5)
    # DiffAugment: the square's centre anywhere in [0, side] (odd sizes: [0, side - 1]).
    centre = _integers(n, 0, side + (1 - size % 2), device, generator)
    corner = centre - size // 2
    color = on["color"]
    return AugmentParams(
        flip=flip & on["xflip"],
        brightness=torch.where(color, bright, 0.0),
        saturation=torch.where(color, sat, 1.0),
        contrast=torch.where(color, con, 1.0),
        shift=torch.where(on["translation"][:, None], shift, 0),
        cutout=torch.where(on["cutout"][:, None], corner, -size),  # -size: the square lies outside
        cutout_size=size,
    )
