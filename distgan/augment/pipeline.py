"""What D sees: which ops, with which probability, drawn from which random stream.

`draw(cfg, n, side, p, device)` draws one augmentation of n images of side `side`. DiffAugment's
ops (xflip, translation, color, cutout) each act on a sample with probability p (DiffAugment: p = 1;
ADA: the adaptive p), with DiffAugment's ranges. ADA's groups (blit, geom, color_matrix, filter,
noise) follow appendix B of Karras et al. 2020: each op inside a group acts with probability p on
its own (the two rotations with 1 - sqrt(1 - p) each, so that some rotation happens with
probability p), with the paper's distributions:

    blit          x-flip: a fair coin; quarter turns: 0..3 uniform; integer translation:
                  round(U(-t, t) x side) pixels per axis, t = augment.translation (1/8)
    geom          isotropic scale: lognormal, std 0.2 ln 2; rotation: U(-pi, pi), before and after
                  the anisotropic scale: lognormal, std 0.2 ln 2; fractional translation:
                  N(0, 0.125^2) x side pixels per axis
    color_matrix  brightness N(0, 0.2^2); contrast lognormal, std 0.5 ln 2; luma flip a fair coin;
                  hue U(-pi, pi); saturation lognormal, std ln 2
    filter        each of 4 bands: a gain, lognormal with std ln 2
    noise         sigma = |N(0, 0.1^2)|, then N(0, sigma^2) per pixel

Every parameter of every configured op is drawn for every sample, whatever p, so the random
stream advances the same way at any p; ADA's groups that are not configured draw nothing.
Randomness comes from the torch generator given (default: the device's global one, which
checkpoints restore on every rank).
"""

from __future__ import annotations

import math

import torch

from distgan.augment.color_matrix import ColorParams
from distgan.augment.filtering import FilterParams, NoiseParams
from distgan.augment.geometric import GeometryParams
from distgan.augment.ops import AugmentParams
from distgan.config import AugmentConfig

SCALE_STD = 0.2 * math.log(2)  # of log(scale), isotropic and anisotropic
FRACTION_SHIFT_STD = 0.125  # x the side
BRIGHTNESS_STD = 0.2
CONTRAST_STD = 0.5 * math.log(2)  # of log(contrast)
SATURATION_STD = math.log(2)  # of log(saturation)
FILTER_GAIN_STD = math.log(2)  # of log(gain)
NOISE_STD = 0.1  # of sigma, before its absolute value


def rotation_probability(p: float) -> float:
    """Each of the two rotations: 1 - sqrt(1 - p), so that 1 - (1 - that)^2 = p."""
    return 1 - math.sqrt(1 - p)


class _Stream:
    """The draws of one augmentation, all from one generator on one device."""

    def __init__(self, n: int, device, generator) -> None:
        self.n, self.device, self.generator = n, device, generator

    def uniform(self, low=0.0, high=1.0, shape=()):
        return torch.rand(self.n, *shape, device=self.device, generator=self.generator) * (high - low) + low

    def normal(self, std, shape=()):
        return torch.randn(self.n, *shape, device=self.device, generator=self.generator) * std

    def lognormal(self, std, shape=()):
        return self.normal(std, shape).exp()

    def coin(self, probability, shape=()):
        return self.uniform(shape=shape) < probability

    def integers(self, low, high, shape=()):
        """Integers in [low, high)."""
        return torch.randint(low, high, (self.n, *shape), device=self.device, generator=self.generator)


def _geometry(draws: _Stream, ops, side: int, p: float, translation: float) -> GeometryParams:
    blit, geom = p if "blit" in ops else 0.0, p if "geom" in ops else 0.0
    turn = rotation_probability(geom)
    flip = draws.coin(blit) & draws.coin(0.5)
    turns = torch.where(draws.coin(blit), draws.integers(0, 4), 0)
    shift = torch.where(
        draws.coin(blit)[:, None], (draws.uniform(-translation, translation, (2,)) * side).round(), 0.0
    )
    scale = torch.where(draws.coin(geom), draws.lognormal(SCALE_STD), 1.0)
    rotate_pre = torch.where(draws.coin(turn), draws.uniform(-math.pi, math.pi), 0.0)
    aniso = torch.where(draws.coin(geom), draws.lognormal(SCALE_STD), 1.0)
    rotate_post = torch.where(draws.coin(turn), draws.uniform(-math.pi, math.pi), 0.0)
    fraction = torch.where(draws.coin(geom)[:, None], draws.normal(FRACTION_SHIFT_STD * side, (2,)), 0.0)
    return GeometryParams(flip, turns, shift, scale, rotate_pre, aniso, rotate_post, fraction)


def _color(draws: _Stream, p: float) -> ColorParams:
    return ColorParams(
        brightness=torch.where(draws.coin(p), draws.normal(BRIGHTNESS_STD), 0.0),
        contrast=torch.where(draws.coin(p), draws.lognormal(CONTRAST_STD), 1.0),
        luma_flip=draws.coin(p) & draws.coin(0.5),
        hue=torch.where(draws.coin(p), draws.uniform(-math.pi, math.pi), 0.0),
        saturation=torch.where(draws.coin(p), draws.lognormal(SATURATION_STD), 1.0),
    )


def draw(
    cfg: AugmentConfig, n: int, side: int, p: float, device, generator: torch.Generator | None = None
) -> AugmentParams:
    """Per-sample parameters; an op is on for a sample with probability p (and in cfg.active_ops)."""
    ops = cfg.active_ops
    draws = _Stream(n, device, generator)
    on = {op: draws.coin(p) & (op in ops) for op in ("xflip", "color", "translation", "cutout")}
    flip = draws.coin(0.5)
    bright = draws.uniform(-0.5, 0.5)
    sat = draws.uniform(0.0, 2.0)
    con = draws.uniform(0.5, 1.5)
    reach = int(side * cfg.translation + 0.5)  # DiffAugment: shifts in [-side/8, side/8]
    shift = draws.integers(-reach, reach + 1, (2,))
    size = int(side * cfg.cutout + 0.5)
    # DiffAugment: the square's centre anywhere in [0, side] (odd sizes: [0, side - 1]).
    centre = draws.integers(0, side + (1 - size % 2), (2,))
    corner = centre - size // 2
    color = on["color"]
    geometry = _geometry(draws, ops, side, p, cfg.translation) if {"blit", "geom"} & set(ops) else None
    ada_color = _color(draws, p) if "color_matrix" in ops else None
    filter_ = None
    if "filter" in ops:
        filter_ = FilterParams(torch.where(draws.coin(p, (4,)), draws.lognormal(FILTER_GAIN_STD, (4,)), 1.0))
    noise = None
    if "noise" in ops:
        std = torch.where(draws.coin(p), draws.normal(NOISE_STD).abs(), 0.0)
        noise = NoiseParams(std, draws.normal(1.0, (3, side, side)))
    return AugmentParams(
        flip=flip & on["xflip"],
        brightness=torch.where(color, bright, 0.0),
        saturation=torch.where(color, sat, 1.0),
        contrast=torch.where(color, con, 1.0),
        shift=torch.where(on["translation"][:, None], shift, 0),
        cutout=torch.where(on["cutout"][:, None], corner, -size),  # -size: the square lies outside
        cutout_size=size,
        geometry=geometry,
        color=ada_color,
        filter=filter_,
        noise=noise,
        diffaugment_color="color" in ops,
    )
