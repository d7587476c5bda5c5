"""The sampling tools behind `python -m distgan.sample`: truncation, latent interpolation, a row per class.

Pure tensor work on a loaded generator (anything with `latent(n, seed)`, `latent_dim`,
`num_classes` and `forward(latent, labels)`); it writes no files, sample.py does.
Latents are N(0, I). Seeds: the latents of n samples are drawn in chunks of `batch`, chunk i from
seed * 100_003 + i, so `--truncation 1` gives exactly the samples of plain sampling.
"""

from __future__ import annotations

import torch

SEED_STRIDE = 100_003  # chunk i of a request with seed s draws its latents from s * SEED_STRIDE + i


def truncate(generator, latent: torch.Tensor, psi: float) -> torch.Tensor:
    """The truncation trick in latent space: pull every latent toward the typical latent by `psi`.

    psi = 1 leaves the latents alone; psi < 1 trades variety for typical, cleaner samples (Brock et
    al. 2019, Karras et al. 2019). For a plain N(0, I) latent that is the mean 0 (psi = 0 gives the
    mean latent's single sample); a mixture latent shrinks toward each component's centre instead.
    """
    return generator.truncate(latent, psi)


def chunked_latents(generator, n: int, seed: int, batch: int) -> torch.Tensor:
    """(n, latent_dim) latents under the seed scheme above."""
    chunks = [
        generator.latent(min(batch, n - start), seed * SEED_STRIDE + i)
        for i, start in enumerate(range(0, n, batch))
    ]
    return torch.cat(chunks)


@torch.no_grad()
def generate(generator, latent: torch.Tensor, labels: torch.Tensor | None, batch: int) -> torch.Tensor:
    """Samples for given latents (and labels), `batch` at a time, returned on the CPU."""
    device = next(generator.parameters()).device
    out = []
    for start in range(0, latent.shape[0], batch):
        chunk_labels = None if labels is None else labels[start : start + batch].to(device)
        out.append(generator(latent[start : start + batch].to(device), chunk_labels).cpu())
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


def class_rows(generator, classes: list[int], per_class: int, seed: int, batch: int):
    """Latents and labels for one row per class: the same `per_class` latents in every row, so a
    column shows one latent across the classes. Returns (latent (K*per_class, D), labels)."""
    latent = chunked_latents(generator, per_class, seed, batch)
    labels = torch.tensor(classes, dtype=torch.long).repeat_interleave(per_class)
    return latent.repeat(len(classes), 1), labels
