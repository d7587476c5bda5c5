"""Differentiable image augmentations with per-sample parameters (DiffAugment, Zhao et al. 2020).

Each op takes a batch (N, C, H, W) and per-sample parameters and is differentiable w.r.t. the
images (gathers, masks and affine colour maps only), so G learns through what D sees. The
parameters are drawn once (`draw`) and applied with `apply`; an op that is off for a sample
gets its identity parameters, so every batch takes the same code path. Pure torch: no config,
no processes; `pipeline.py` decides what to draw.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass(frozen=True)
class AugmentParams:
    """One augmentation of a batch: one value per sample (identity values where an op is off)."""

    flip: torch.Tensor  # (N,) bool: mirror left-right
    brightness: torch.Tensor  # (N,) added to every pixel (DiffAugment: U(-0.5, 0.5); identity 0)
    saturation: torch.Tensor  # (N,) factor on the distance to the pixel's channel mean (U(0, 2); 1)
    contrast: torch.Tensor  # (N,) factor on the distance to the image mean (U(0.5, 1.5); 1)
    shift: torch.Tensor  # (N, 2) int64 (rows, columns): pixel (i, j) comes from (i - dy, j - dx); 0
    cutout: torch.Tensor  # (N, 2) int64 top-left corner of the zeroed square (may lie outside)
    cutout_size: int  # side of the zeroed square in pixels (0 = no cutout for anyone)

    def select(self, rows) -> AugmentParams:
        """The parameters of some samples (a process's slice of a global batch)."""
        return AugmentParams(
            **{f.name: getattr(self, f.name)[rows] for f in fields(self) if f.name != "cutout_size"},
            cutout_size=self.cutout_size,
        )

    def to(self, device) -> AugmentParams:
        return AugmentParams(
            **{f.name: getattr(self, f.name).to(device) for f in fields(self) if f.name != "cutout_size"},
            cutout_size=self.cutout_size,
        )


def _per_sample(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return values.to(x.dtype).view(-1, 1, 1, 1)


def xflip(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


def brightness(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    return x + _per_sample(shift, x)


def saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Scale each pixel's distance to its mean over channels (a no-op on one channel)."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * _per_sample(factor, x) + mean


def contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Scale each image's distance to its own mean over channels and pixels."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * _per_sample(factor, x) + mean


def translate(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Integer shift per sample; pixels shifted in from outside are 0 (mid-grey in [-1, 1])."""
    n, c, h, w = x.shape
    rows = torch.arange(h, device=x.device).view(1, h) - shift[:, 0:1]  # source row of each output row
    cols = torch.arange(w, device=x.device).view(1, w) - shift[:, 1:2]
    inside = ((rows >= 0) & (rows < h))[:, None, :, None] & ((cols >= 0) & (cols < w))[:, None, None, :]
    out = x.gather(2, rows.clamp(0, h - 1)[:, None, :, None].expand(n, c, h, w))
    out = out.gather(3, cols.clamp(0, w - 1)[:, None, None, :].expand(n, c, h, w))
    return torch.where(inside, out, torch.zeros((), dtype=x.dtype, device=x.device))


def cutout(x: torch.Tensor, corner: torch.Tensor, size: int) -> torch.Tensor:
    """Zero a size x size square per sample, top-left at `corner` (clipped to the image)."""
    if size == 0:
        return x
    _, _, h, w = x.shape
    rows = torch.arange(h, device=x.device).view(1, h)
    cols = torch.arange(w, device=x.device).view(1, w)
    in_rows = (rows >= corner[:, 0:1]) & (rows < corner[:, 0:1] + size)
    in_cols = (cols >= corner[:, 1:2]) & (cols < corner[:, 1:2] + size)
    hole = in_rows[:, None, :, None] & in_cols[:, None, None, :]
    return torch.where(hole, torch.zeros((), dtype=x.dtype, device=x.device), x)


def apply(x: torch.Tensor, params: AugmentParams) -> torch.Tensor:
    """Flip, colour (brightness, saturation, contrast), translation, cutout: DiffAugment's order
    (colour before translation, so the zero padding stays zero), with the flip first as in ADA."""
    x = xflip(x, params.flip)
    x = contrast(saturation(brightness(x, params.brightness), params.saturation), params.contrast)
    x = translate(x, params.shift)
    return cutout(x, params.cutout, params.cutout_size)
