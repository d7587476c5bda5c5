"""ADA's colour group as one 4x4 colour matrix per image (Karras et al. 2020, appendix B).

In order: brightness (add b to every channel), contrast (scale by c), luma flip (reflect through
the plane across the luma axis), hue rotation (turn about the luma axis), saturation (scale the part
across the luma axis). The luma axis is v = (1, 1, 1) / sqrt(3), as in the paper. All of them act
around 0: for distgan's images in [-1, 1], 0 is mid-grey, so a luma flip maps grey level g to -g.

RGB images go through the matrix. A 1-channel image is a grey RGB image (g, g, g): hue rotation and
saturation leave grey unchanged, so it goes through brightness, contrast and luma flip only, as the
exact map g -> (1 - 2 flip) c (g + b). Differentiable w.r.t. the images (affine). Pure torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from distgan.augment.geometric import matmul


@dataclass(frozen=True)
class ColorParams:
    """One value per sample; the identity value where a sample's op is off."""

    brightness: torch.Tensor  # (N,) added to every channel; 0
    contrast: torch.Tensor  # (N,) factor around 0; 1
    luma_flip: torch.Tensor  # (N,) bool: reflect across the luma axis; False
    hue: torch.Tensor  # (N,) radians turned about the luma axis; 0
    saturation: torch.Tensor  # (N,) factor on the part across the luma axis; 1

    def is_on(self) -> torch.Tensor:
        """(N,) bool: some colour op changes the sample."""
        return (
            (self.brightness != 0)
            | (self.contrast != 1)
            | self.luma_flip
            | (self.hue != 0)
            | (self.saturation != 1)
        )

    def matrix(self) -> torch.Tensor:
        """(N, 4, 4) acting on (r, g, b, 1): saturation @ hue @ luma flip @ contrast @ brightness."""
        n, device = self.brightness.shape[0], self.brightness.device
        vv = torch.full((3, 3), 1 / 3, device=device)  # v v^T
        eye = torch.eye(3, device=device)
        # [v]x, the cross product with v: [v]x u = v x u
        cross = torch.tensor(
            [[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]], device=device
        ) / math.sqrt(3)
        cos, sin = torch.cos(self.hue)[:, None, None], torch.sin(self.hue)[:, None, None]
        hue = cos * eye + sin * cross + (1 - cos) * vv  # Rodrigues: turn by hue about v
        flip = eye - 2 * self.luma_flip.float()[:, None, None] * vv
        saturation = vv + (eye - vv) * self.saturation[:, None, None]
        linear = matmul(matmul(saturation, hue), flip.expand(n, 3, 3)) * self.contrast[:, None, None]
        out = torch.zeros(n, 4, 4, device=device)
        out[:, :3, :3] = linear
        out[:, :3, 3] = linear.sum(2) * self.brightness[:, None]  # linear @ (b, b, b)
        out[:, 3, 3] = 1
        return out

    def grey_map(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(gain, offset), each (N,): what the group does to a grey level g: gain * g + offset."""
        sign = 1 - 2 * self.luma_flip.float()
        return sign * self.contrast, sign * self.contrast * self.brightness


def transform(x: torch.Tensor, params: ColorParams) -> torch.Tensor:
    """The colour group applied to (N, C, H, W), C = 3 (RGB) or 1 (grey); samples with every op off
    are returned as they are."""
    if x.shape[1] == 3:
        m = params.matrix().to(x.dtype)
        # elementwise, not einsum: each sample rounds the same whatever the batch size
        out = (m[:, :3, :3, None, None] * x[:, None]).sum(2) + m[:, :3, 3, None, None]
    elif x.shape[1] == 1:
        gain, offset = (t.to(x.dtype).view(-1, 1, 1, 1) for t in params.grey_map())
        out = x * gain + offset
    else:
        raise ValueError(f"the colour group needs 1 or 3 channels, got {x.shape[1]}")
    return torch.where(params.is_on().view(-1, 1, 1, 1), out, x)
