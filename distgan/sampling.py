"""The sampling tools behind `python -m distgan.sample`: truncation, latent interpolation, a row per
class, and for generators with a W space (StyleGAN2) style-mixing grids and walks in W.

Pure tensor work on a loaded generator (anything with `latent(n, seed)`, `latent_dim`,
`num_classes` and `forward(latent, labels)`); it writes no files, sample.py does.
Latents are N(0, I). Seeds: the latents of n samples are drawn in chunks of `batch`, chunk i from
seed * 100_003 + i, so `--truncation 1` gives exactly the samples of plain sampling.
A W-space generator also has `num_ws`, `w_latents(latent, labels)` (z -> w's (N, num_ws, w_dim),
in eval mode without mixing) and a forward that takes w's in place of z (labels are then unused).
"""

from __future__ import annotations

import torch

SEED_STRIDE = 100_003  # chunk i of a request with seed s draws its latents from s * SEED_STRIDE + i


def has_w_space(generator) -> bool:
    """Does the generator map z to per-layer w's that its forward also takes (StyleGAN2)?"""
    return hasattr(generator, "w_latents") and hasattr(generator, "num_ws")


def truncate(generator, latent: torch.Tensor, psi: float, labels: torch.Tensor | None = None):
    """The truncation trick: pull every latent toward the typical latent by `psi`.

    psi = 1 leaves the latents alone; psi < 1 trades variety for typical, cleaner samples (Brock et
    al. 2019, Karras et al. 2019). For a plain N(0, I) latent that is the mean 0 (psi = 0 gives the
    mean latent's single sample); a mixture latent shrinks toward each component's centre instead.
    A W-space generator maps z (with its labels) to w's and pulls them toward the average w tracked
    in training (returns w's); a conditional one has one average over all classes, as the official
    StyleGAN2-ADA, so psi = 0 gives one image whatever the label.
    """
    if has_w_space(generator):
        return generator.truncate(latent, psi, labels)
    return generator.truncate(latent, psi)


def chunked_latents(generator, n: int, seed: int, batch: int) -> torch.Tensor:
    """(n, latent_dim) latents under the seed scheme above."""
    chunks = [
        generator.latent(min(batch, n - start), seed * SEED_STRIDE + i)
        for i, start in enumerate(range(0, n, batch))
    ]
    return torch.cat(chunks)


@torch.no_grad()
def generate(
    generator, latent: torch.Tensor, labels: torch.Tensor | None, batch: int, psi: float = 1.0
) -> torch.Tensor:
    """Samples for given latents (z, or w's of a W-space generator) and labels, truncated by `psi`,
    `batch` at a time (so the w's of many samples are never all held at once), returned on the CPU."""
    device = next(generator.parameters()).device
    out = []
    for start in range(0, latent.shape[0], batch):
        chunk_labels = None if labels is None else labels[start : start + batch].to(device)
        chunk = truncate(generator, latent[start : start + batch].to(device), psi, chunk_labels)
        out.append(generator(chunk, chunk_labels).cpu())
    return torch.cat(out)


@torch.no_grad()
def mapped(generator, latent: torch.Tensor, labels: torch.Tensor | None, batch: int) -> torch.Tensor:
    """The w's (N, num_ws, w_dim) of a W-space generator for z's (and labels), on the CPU."""
    device = next(generator.parameters()).device
    out = []
    for start in range(0, latent.shape[0], batch):
        chunk_labels = None if labels is None else labels[start : start + batch].to(device)
        out.append(generator.w_latents(latent[start : start + batch].to(device), chunk_labels).cpu())
    return torch.cat(out)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation from a (D,) to b (D,) at fractions t (K,): (K, D). Gaussian latents
    keep their typical norm along the way (White 2016); nearly parallel ends fall back to a line."""
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    t = t[:, None]
    if omega.abs() < 1e-4:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def interpolation_latents(generator, rows: int, steps: int, seed: int) -> torch.Tensor:
    """(rows * steps, D): row r walks in `steps` equal steps from latent r to latent rows + r of
    generator.latent(2 * rows, seed), both ends included."""
    ends = generator.latent(2 * rows, seed)
    t = torch.linspace(0.0, 1.0, steps)
    return torch.cat([slerp(ends[r], ends[rows + r], t) for r in range(rows)])


def w_interpolation_latents(
    generator, rows: int, steps: int, seed: int, labels: torch.Tensor | None, batch: int
) -> torch.Tensor:
    """(rows * steps, num_ws, w_dim): the walks of `interpolation_latents` (the same two ends per
    row), taken in W instead: both ends mapped (row r's ends with labels[r]), then equal steps on
    the straight line between their w's (the path the paper's perceptual path length measures)."""
    ends = generator.latent(2 * rows, seed)
    end_labels = None if labels is None else labels.repeat(2)
    ws = mapped(generator, ends, end_labels, batch)
    t = torch.linspace(0.0, 1.0, steps)[:, None, None]
    return torch.cat([torch.lerp(ws[r], ws[rows + r], t) for r in range(rows)])


def style_mix_ws(row_ws: torch.Tensor, col_ws: torch.Tensor, coarse: int) -> torch.Tensor:
    """(R * C, num_ws, w_dim), row by row: cell (r, c) takes its first `coarse` w's (the coarse
    styles: pose, shape) from column source c and the rest (the fine styles: colours, texture)
    from row source r, as the official StyleGAN2-ADA style-mixing script (its default, styles 0-6,
    is coarse = num_ws // 2 at 256 px)."""
    cells = row_ws[:, None].repeat(1, col_ws.shape[0], 1, 1)
    cells[:, :, :coarse] = col_ws[None, :, :coarse]
    return cells.flatten(0, 1)


def style_mix_grid(
    generator, rows: int, cols: int, seed: int, coarse: int, psi: float, batch: int
) -> torch.Tensor:
    """The style-mixing figure as (rows + 1) * (cols + 1) images, row by row: a blank corner, the
    column sources along the top, the row sources down the left, each cell mixed by `style_mix_ws`.

    Sources: the cols + rows latents of seed (the seed scheme above), columns first; a conditional
    generator's source k has label k mod num_classes. The sources' w's are truncated by `psi`."""
    latent = chunked_latents(generator, cols + rows, seed, batch)
    labels = torch.arange(cols + rows) % generator.num_classes if generator.is_conditional else None
    ws = truncate(generator, mapped(generator, latent, labels, batch), psi)
    sources = generate(generator, ws, None, batch)
    cells = generate(generator, style_mix_ws(ws[cols:], ws[:cols], coarse), None, batch)
    blank = torch.full_like(sources[:1], -1.0)  # black in the [-1, 1] range
    picture = [blank, sources[:cols]]
    for r in range(rows):
        picture += [sources[cols + r : cols + r + 1], cells[r * cols : (r + 1) * cols]]
    return torch.cat(picture)


def class_rows(generator, classes: list[int], per_class: int, seed: int, batch: int):
    """Latents and labels for one row per class: the same `per_class` latents in every row, so a
    column shows one latent across the classes. Returns (latent (K*per_class, D), labels)."""
    latent = chunked_latents(generator, per_class, seed, batch)
    labels = torch.tensor(classes, dtype=torch.long).repeat_interleave(per_class)
    return latent.repeat(len(classes), 1), labels
