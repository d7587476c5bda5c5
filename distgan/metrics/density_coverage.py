"""Density and coverage (Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative Models").

Both use only the REAL manifold (k-NN balls around real points), which makes them robust to
outliers among the generated points, unlike precision/recall:
density  = 1/(k M) sum_j sum_i 1[fake_j in B(real_i, NND_k(real_i))]  (can exceed 1; ~1 for equal sets)
coverage = 1/N sum_i 1[exists j: fake_j in B(real_i, NND_k(real_i))]   (share of real balls hit)
with N real and M generated points; the paper recommends k = 5. Pure torch, in row blocks;
knows nothing of images, extractors or processes.
"""

from __future__ import annotations

import torch

from distgan.metrics.errors import MetricsError
from distgan.metrics.precision_recall import _to_tensor, knn_radii, rows_per_block

DEFAULT_K = 5  # Naeem et al. 2020, sec. 4


def density_coverage(real, fake, k: int = DEFAULT_K) -> dict[str, float]:
    """{"density", "coverage"} of generated features `fake` against real features `real`."""
    real_t, fake_t = _to_tensor(real, "real"), _to_tensor(fake, "fake")
    if real_t.shape[1] != fake_t.shape[1]:
        raise MetricsError(f"feature dimensions differ: {real_t.shape[1]} vs {fake_t.shape[1]}")
    if fake_t.shape[0] < 1:
        raise MetricsError("density_coverage: no generated features")
    fake_t = fake_t.to(device=real_t.device, dtype=real_t.dtype)
    # Closed balls, widened by a relative 1e-6: the k-th neighbour lies exactly on its ball, and the
    # same distance computed in another matrix product can round a hair larger (identical sets).
    radii = knn_radii(real_t, k) * (1 + 1e-6)  # (N,)
    hits_per_fake = torch.zeros(fake_t.shape[0], dtype=torch.float64, device=real_t.device)
    covered = torch.zeros(real_t.shape[0], dtype=torch.bool, device=real_t.device)
    block = rows_per_block(real_t.shape[0])
    for start in range(0, fake_t.shape[0], block):
        inside = torch.cdist(fake_t[start : start + block], real_t) <= radii[None, :]  # (block, N)
        hits_per_fake[start : start + inside.shape[0]] = inside.sum(dim=1).double()
        covered |= inside.any(dim=0)
    density = hits_per_fake.sum().item() / (k * fake_t.shape[0])
    return {"density": density, "coverage": covered.double().mean().item()}
