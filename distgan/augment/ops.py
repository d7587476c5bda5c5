"""Differentiable image augmentations with per-sample parameters: DiffAugment's ops (Zhao et al.
2020) here, ADA's groups (Karras et al. 2020) beside this file, and `apply`, which runs them all.

Each op takes a batch (N, C, H, W) and per-sample parameters and is differentiable w.r.t. the
images (gathers, masks, filters and affine colour maps only), so G learns through what D sees. The
parameters are drawn once (`draw`) and applied with `apply`; an op that is off for a sample
gets its identity parameters, so every batch takes the same code path. Pure torch: no config,
no processes; `pipeline.py` decides what to draw.

    geometric.py     blit + geom: flips, quarter turns, translations, scalings, rotations, one resampling
    color_matrix.py  ADA's colour: brightness, contrast, luma flip, hue, saturation as one matrix
    filtering.py     ADA's image-space filtering (4 bands) and additive noise
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass

import torch

from distgan.augment.color_matrix import ColorParams
from distgan.augment.color_matrix import transform as transform_color
from distgan.augment.filtering import FilterParams, NoiseParams, add_noise, filter_bands
from distgan.augment.geometric import GeometryParams
from distgan.augment.geometric import transform as transform_geometry


def _each_tensor(value, fn):
    """`value` with fn applied to every tensor in it (nested parameter dataclasses, None, ints kept)."""
    if isinstance(value, torch.Tensor):
        return fn(value)
    if is_dataclass(value):
        return type(value)(**{f.name: _each_tensor(getattr(value, f.name), fn) for f in fields(value)})
    return value


@dataclass(frozen=True)
class AugmentParams:
    """One augmentation of a batch: one value per sample (identity values where an op is off).
    ADA's groups are None when not among the ops (nothing drawn for them)."""

    flip: torch.Tensor  # (N,) bool: mirror left-right
    brightness: torch.Tensor  # (N,) added to every pixel (DiffAugment: U(-0.5, 0.5); identity 0)
    saturation: torch.Tensor  # (N,) factor on the distance to the pixel's channel mean (U(0, 2); 1)
    contrast: torch.Tensor  # (N,) factor on the distance to the image mean (U(0.5, 1.5); 1)
    shift: torch.Tensor  # (N, 2) int64 (rows, columns): pixel (i, j) comes from (i - dy, j - dx); 0
    cutout: torch.Tensor  # (N, 2) int64 top-left corner of the zeroed square (may lie outside)
    cutout_size: int  # side of the zeroed square in pixels (0 = no cutout for anyone)
    geometry: GeometryParams | None = None  # ADA's blit and geom groups
    color: ColorParams | None = None  # ADA's colour group (the op `color_matrix`)
    filter: FilterParams | None = None  # ADA's image-space filtering
    noise: NoiseParams | None = None  # ADA's additive noise
    diffaugment_color: bool = True  # DiffAugment's colour op is among the ops (else not applied)

    def select(self, rows) -> AugmentParams:
        """The parameters of some samples (a process's slice of a global batch)."""
        return _each_tensor(self, lambda t: t[rows])

    def to(self, device) -> AugmentParams:
        return _each_tensor(self, lambda t: t.to(device))


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
    """Flip, ADA's geometry, colour (DiffAugment's, then ADA's matrix), ADA's filter and noise,
    DiffAugment's translation, cutout. ADA's order for its groups; DiffAugment's colour before its
    translation, so the zero padding stays zero; cutout last, as in both papers."""
    x = xflip(x, params.flip)
    if params.geometry is not None:
        x = transform_geometry(x, params.geometry)
    if params.diffaugment_color:  # not configured: skipped, since a factor of 1 rounds
        x = contrast(saturation(brightness(x, params.brightness), params.saturation), params.contrast)
    if params.color is not None:
        x = transform_color(x, params.color)
    if params.filter is not None:
        x = filter_bands(x, params.filter)
    if params.noise is not None:
        x = add_noise(x, params.noise)
    x = translate(x, params.shift)
    return cutout(x, params.cutout, params.cutout_size)
