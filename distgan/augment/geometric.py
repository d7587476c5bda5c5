"""ADA's geometric groups as ONE resampling per image (Karras et al. 2020, appendix B).

blit: x-flip, quarter turns, integer translation; geom: isotropic scaling, rotation, anisotropic
scaling, rotation again, fractional translation. Each op is an affine map of pixel coordinates;
the ops a sample has on compose into one 3x3 matrix per sample and the image is resampled once.

Coordinates: pixel centres, origin at the image centre, x to the right, y down (rows). Angles turn
counter-clockwise as the image is shown. The matrix maps an OUTPUT pixel to the INPUT point it
shows: the inverse of every op, composed in reverse order.

Resampling: bilinear interpolation at those points; points outside the image are read through
reflection about the border pixels (numpy's `reflect`, repeated for points far outside), so no
black corners appear. The paper pads, upsamples 2x with a wavelet filter, resamples and downsamples,
which suppresses aliasing when an image shrinks a lot. We read the image directly because an
integer-only matrix (flips, quarter turns, integer shifts) then lands every output pixel exactly on
an input pixel with weight 1: those ops are exact pixel copies, as in the paper's blit path, and
the whole group costs one gather of 4 neighbours instead of filter passes over a 4x larger image.
The price: bilinear weights blur fractional positions slightly and alias below about half size.
Differentiable w.r.t. the images (gathers with fixed weights). Pure torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# cos and sin of 0, 1, 2, 3 quarter turns, exact (torch.cos(pi / 2) is not 0)
_QUARTER_COS = (1.0, 0.0, -1.0, 0.0)
_QUARTER_SIN = (0.0, 1.0, 0.0, -1.0)


@dataclass(frozen=True)
class GeometryParams:
    """One value per sample; the identity value where a sample's op is off."""

    flip: torch.Tensor  # (N,) bool: mirror left-right (blit)
    quarter_turns: torch.Tensor  # (N,) int64 in 0..3: counter-clockwise turns of 90 degrees (blit); 0
    shift: torch.Tensor  # (N, 2) whole pixels (x right, y down) (blit); 0
    scale: torch.Tensor  # (N,) isotropic factor (geom); 1
    rotate_pre: torch.Tensor  # (N,) radians, counter-clockwise, before the anisotropic scaling (geom); 0
    aniso: torch.Tensor  # (N,) x scaled by it, y by its inverse (geom); 1
    rotate_post: torch.Tensor  # (N,) radians, after the anisotropic scaling (geom); 0
    fraction_shift: torch.Tensor  # (N, 2) pixels (x right, y down) (geom); 0

    def inverse_matrix(self) -> torch.Tensor:
        """(N, 3, 3): output pixel -> the input point it shows (see the module docstring)."""
        turns = self.quarter_turns.long()
        cos = torch.tensor(_QUARTER_COS, device=turns.device)[turns]
        sin = torch.tensor(_QUARTER_SIN, device=turns.device)[turns]
        mirror = torch.where(self.flip, -1.0, 1.0)
        inverses = (  # each op's inverse, in the order the ops are applied
            scaling(mirror, torch.ones_like(mirror)),
            rotation(cos, -sin),
            translation(-self.shift),
            scaling(1 / self.scale, 1 / self.scale),
            rotation(torch.cos(self.rotate_pre), -torch.sin(self.rotate_pre)),
            scaling(1 / self.aniso, self.aniso),
            rotation(torch.cos(self.rotate_post), -torch.sin(self.rotate_post)),
            translation(-self.fraction_shift),
        )
        matrix = inverses[0]
        for inverse in inverses[1:]:
            matrix = matmul(matrix, inverse)
        return matrix


def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b for stacks of small matrices, elementwise: each sample's product is rounded the same
    whatever the batch size (a rank's share of a batch gets exactly the whole batch's values)."""
    return (a.unsqueeze(-1) * b.unsqueeze(-3)).sum(-2)


def _matrix(a, b, c, d, e, f) -> torch.Tensor:
    """Per-sample [[a, b, c], [d, e, f], [0, 0, 1]] from (N,) tensors."""
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([a, b, c, d, e, f, zero, zero, one], dim=1).view(-1, 3, 3)


def scaling(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    zero = torch.zeros_like(sx)
    return _matrix(sx, zero, zero, zero, sy, zero)


def rotation(cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Counter-clockwise as shown (y points down): (x, y) -> (x cos + y sin, -x sin + y cos)."""
    zero = torch.zeros_like(cos)
    return _matrix(cos, sin, zero, -sin, cos, zero)


def translation(shift: torch.Tensor) -> torch.Tensor:
    one, zero = torch.ones_like(shift[:, 0]), torch.zeros_like(shift[:, 0])
    return _matrix(one, zero, shift[:, 0], zero, one, shift[:, 1])


def reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    """Integer positions mapped into [0, size) by reflection about the border pixels, periodically."""
    if size == 1:
        return torch.zeros_like(index)
    period = 2 * (size - 1)
    folded = torch.remainder(index, period)
    return torch.where(folded >= size, period - folded, folded)


def resample(x: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """Each output pixel of x (N, C, H, W) read at inverse @ (its centred position), bilinearly."""
    n, c, h, w = x.shape
    cy, cx = (h - 1) / 2, (w - 1) / 2
    ys = torch.arange(h, device=x.device, dtype=inverse.dtype) - cy
    xs = torch.arange(w, device=x.device, dtype=inverse.dtype) - cx
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    gx, gy = grid_x.flatten(), grid_y.flatten()
    m = inverse[:, :2, :, None]  # elementwise, not a batched matmul: see `matmul`
    sx = m[:, 0, 0] * gx + m[:, 0, 1] * gy + m[:, 0, 2] + cx  # (N, H*W)
    sy = m[:, 1, 0] * gx + m[:, 1, 1] * gy + m[:, 1, 2] + cy
    x0, y0 = sx.floor(), sy.floor()
    fx, fy = (sx - x0).to(x.dtype)[:, None], (sy - y0).to(x.dtype)[:, None]
    x0, y0 = x0.long(), y0.long()
    cols = (reflect(x0, w), reflect(x0 + 1, w))
    rows = (reflect(y0, h), reflect(y0 + 1, h))
    flat = x.reshape(n, c, h * w)

    def at(row, col):
        return flat.gather(2, (row * w + col)[:, None, :].expand(n, c, h * w))

    # Weights exactly 1 and 0 where the point is a pixel centre: an exact copy of that pixel.
    out = (
        at(rows[0], cols[0]) * ((1 - fx) * (1 - fy))
        + at(rows[0], cols[1]) * (fx * (1 - fy))
        + at(rows[1], cols[0]) * ((1 - fx) * fy)
        + at(rows[1], cols[1]) * (fx * fy)
    )
    return out.view(n, c, h, w)


def transform(x: torch.Tensor, params: GeometryParams) -> torch.Tensor:
    """The geometric groups applied; a sample whose matrix is the identity is returned as it is."""
    inverse = params.inverse_matrix()
    moved = (inverse != torch.eye(3, device=inverse.device)).flatten(1).any(1)
    return torch.where(moved.view(-1, 1, 1, 1), resample(x, inverse), x)
