"""ADA's image-space filtering and additive noise groups (Karras et al. 2020, appendix B).

Filtering: the spectrum is split into 4 bands, [0, pi/8], [pi/8, pi/4], [pi/4, pi/2], [pi/2, pi]
(radians per pixel), each amplified by its own gain; the gains are then divided by
sqrt(sum_i lambda_i g_i^2), lambda = (10, 1, 1, 1) / 13 the share of a natural image's power in each
band, so the expected power of the image stays as it was. The bands are 1-D FIR filters (windowed
sinc low-passes and their differences, so at equal gains they sum to the identity); the per-sample
filter sum_i g_i band_i runs along rows, then along columns, as the paper's separable filter does,
with reflection at the borders. Noise: x + sigma * e, e ~ N(0, 1) per pixel and channel.
Differentiable w.r.t. the images (linear). Pure torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from distgan.augment.geometric import reflect

BAND_EDGES = (math.pi / 8, math.pi / 4, math.pi / 2)  # between the 4 bands
EXPECTED_POWER = (10 / 13, 1 / 13, 1 / 13, 1 / 13)  # a natural image's share in each band
HALF_TAPS = 8  # the filters have 2 * HALF_TAPS + 1 taps


@dataclass(frozen=True)
class FilterParams:
    gains: torch.Tensor  # (N, 4) amplification of each band before normalisation; 1 where off


@dataclass(frozen=True)
class NoiseParams:
    std: torch.Tensor  # (N,) sigma of the added noise; 0 where off
    noise: torch.Tensor  # (N, 3, H, W) N(0, 1); a 1-channel image takes channel 0


def _lowpass(cutoff: float) -> torch.Tensor:
    """Hann-windowed ideal low-pass with `cutoff` (radians per pixel), DC gain exactly 1, float64."""
    n = torch.arange(-HALF_TAPS, HALF_TAPS + 1, dtype=torch.float64)
    ideal = torch.sinc(n * cutoff / math.pi) * cutoff / math.pi
    window = 0.5 + 0.5 * torch.cos(math.pi * n / (HALF_TAPS + 1))
    taps = ideal * window
    return taps / taps.sum()


def band_filters() -> torch.Tensor:
    """(4, 2 * HALF_TAPS + 1) float64: one band-pass per band; they sum to the unit impulse."""
    impulse = torch.zeros(2 * HALF_TAPS + 1, dtype=torch.float64)
    impulse[HALF_TAPS] = 1.0
    lows = [_lowpass(edge) for edge in BAND_EDGES]
    return torch.stack([lows[0], lows[1] - lows[0], lows[2] - lows[1], impulse - lows[2]])


def normalised_gains(gains: torch.Tensor) -> torch.Tensor:
    """Gains scaled so that the expected power of a natural image is unchanged."""
    power = torch.tensor(EXPECTED_POWER, dtype=gains.dtype, device=gains.device)
    return gains / (gains.square() * power).sum(1, keepdim=True).sqrt()


def _filter_along(x: torch.Tensor, taps: torch.Tensor, dim: int) -> torch.Tensor:
    """Per-sample 1-D filter `taps` (N, K) along dim 2 (rows) or 3 (columns), reflecting at borders."""
    n, c, h, w = x.shape
    size = x.shape[dim]
    index = reflect(torch.arange(-HALF_TAPS, size + HALF_TAPS, device=x.device), size)
    padded = x.index_select(dim, index)
    padded = padded.reshape(1, n * c, *padded.shape[2:])
    kernel = taps.repeat_interleave(c, 0)
    kernel = kernel.view(n * c, 1, 1, -1) if dim == 3 else kernel.view(n * c, 1, -1, 1)
    return torch.nn.functional.conv2d(padded, kernel, groups=n * c).view(n, c, h, w)


def filter_bands(x: torch.Tensor, params: FilterParams) -> torch.Tensor:
    """Each band of each sample amplified by its gain; samples with every gain 1 returned as they are."""
    gains = normalised_gains(params.gains.double())
    taps = (gains @ band_filters().to(gains.device)).to(x.dtype)  # symmetric: correlation = convolution
    out = _filter_along(_filter_along(x, taps, 3), taps, 2)
    on = (params.gains != 1).any(1)
    return torch.where(on.view(-1, 1, 1, 1), out, x)


def add_noise(x: torch.Tensor, params: NoiseParams) -> torch.Tensor:
    noise = params.noise[:, : x.shape[1]].to(x.dtype)
    out = x + params.std.to(x.dtype).view(-1, 1, 1, 1) * noise
    return torch.where((params.std != 0).view(-1, 1, 1, 1), out, x)
