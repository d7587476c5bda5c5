"""Improved precision and recall (Kynkäänniemi et al. 2019) from k-NN manifolds of feature sets.

Each set's manifold is the union of balls around its points, each ball's radius
the distance to that point's k-th nearest neighbour within the same set.
precision = share of generated points inside the real manifold (quality);
recall = share of real points inside the generated manifold (coverage).
Pure torch; runs on whatever device the features are on, in row blocks so
memory stays O(block x N). Knows nothing of images, extractors or processes.
"""

from __future__ import annotations

import torch

from distgan.metrics.errors import MetricsError

_BLOCK = 1024  # rows of the distance matrix computed at once


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
    radii = []
    for start in range(0, points.shape[0], _BLOCK):
        dist = torch.cdist(points[start : start + _BLOCK], points)
        # k + 1 smallest: the point itself (distance 0) comes first.
        radii.append(dist.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(radii)


def manifold_share(queries: torch.Tensor, points: torch.Tensor, radii: torch.Tensor) -> float:
    """Share of `queries` within radius of at least one of `points`."""
    inside = []
    for start in range(0, queries.shape[0], _BLOCK):
        dist = torch.cdist(queries[start : start + _BLOCK], points)
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
