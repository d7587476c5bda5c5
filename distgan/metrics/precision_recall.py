"""Improved precision and recall (Kynkäänniemi et al. 2019) from k-NN manifolds of feature sets.

Each set's manifold is the union of balls around its points, each ball's radius
the distance to that point's k-th nearest neighbour within the same set.
precision = share of generated points inside the real manifold (quality);
recall = share of real points inside the generated manifold (coverage).
Pure torch; runs on whatever device the features are on. Distances are computed in row blocks of
at most BLOCK_ENTRIES entries (64 MB in float64), never as the full N x N matrix: at N = 50,000 a
block is 167 rows. Knows nothing of images, extractors or processes.
"""

from __future__ import annotations

import torch

from distgan.metrics.errors import MetricsError

BLOCK_ENTRIES = 1 << 23  # distances held at once; a block's rows = BLOCK_ENTRIES // columns


def rows_per_block(columns: int) -> int:
    return max(1, min(4096, BLOCK_ENTRIES // max(columns, 1)))


def _to_tensor(feats, name: str) -> torch.Tensor:
    x = torch.as_tensor(feats)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise MetricsError(f"{name}: expected features of shape (N, D), got shape {tuple(x.shape)}")
    return x.to(torch.float64 if x.device.type == "cpu" else torch.float32)


def knn_radii(points: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest other point of the same set."""
    if points.shape[0] <= k:
        raise MetricsError(
            f"precision_recall: k={k} needs more than {k} points per set, got {points.shape[0]}"
        )
    radii, block = [], rows_per_block(points.shape[0])
    for start in range(0, points.shape[0], block):
        dist = torch.cdist(points[start : start + block], points)
        # k + 1 smallest: the point itself (distance 0) comes first.
        radii.append(dist.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(radii)


def manifold_share(queries: torch.Tensor, points: torch.Tensor, radii: torch.Tensor) -> float:
    """Share of `queries` within radius of at least one of `points`."""
    inside, block = [], rows_per_block(points.shape[0])
    for start in range(0, queries.shape[0], block):
        dist = torch.cdist(queries[start : start + block], points)
        inside.append((dist <= radii[None, :]).any(dim=1))
    return torch.cat(inside).double().mean().item()


def precision_recall(real, fake, k: int = 3) -> dict[str, float]:
    """{"precision", "recall"} of generated features `fake` against real features `real`."""
    real_t, fake_t = _to_tensor(real, "real"), _to_tensor(fake, "fake")
    if real_t.shape[1] != fake_t.shape[1]:
        raise MetricsError(f"feature dimensions differ: {real_t.shape[1]} vs {fake_t.shape[1]}")
    fake_t = fake_t.to(device=real_t.device, dtype=real_t.dtype)
    precision = manifold_share(fake_t, real_t, knn_radii(real_t, k))
    recall = manifold_share(real_t, fake_t, knn_radii(fake_t, k))
    return {"precision": precision, "recall": recall}
