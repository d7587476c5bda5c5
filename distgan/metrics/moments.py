"""Mean and covariance of a feature stream in float64, one batch at a time (never N rows at once).

Batches are merged with Chan et al.'s pairwise update (count, mean, centred scatter), which keeps
the precision of a two-pass computation; the states of several processes merge the same way, so
the statistics of a sharded stream equal those of one pass to float64 rounding. Pure numpy.
"""

from __future__ import annotations

import numpy as np

from distgan.metrics.errors import MetricsError


class Moments:
    """Running count, mean (D,) and centred scatter (D, D) of the rows seen so far."""

    def __init__(self, dim: int):
        self.count = 0
        self.mean = np.zeros(dim, dtype=np.float64)
        self.scatter = np.zeros((dim, dim), dtype=np.float64)

    def add(self, rows) -> None:
        """Fold an (n, D) batch in."""
        batch = np.asarray(rows.detach().cpu().double() if hasattr(rows, "detach") else rows, np.float64)
        batch = batch.reshape(batch.shape[0], -1)
        if batch.shape[0]:
            centred = batch - batch.mean(axis=0)
            self.merge(batch.shape[0], batch.mean(axis=0), centred.T @ centred)

    def merge(self, count: int, mean: np.ndarray, scatter: np.ndarray) -> None:
        """Fold in another state (a batch, or another process's whole share)."""
        if count == 0:
            return
        total = self.count + count
        delta = mean - self.mean
        self.scatter += scatter + np.outer(delta, delta) * (self.count * count / total)
        self.mean = self.mean + delta * (count / total)
        self.count = total

    def statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean (D,) and unbiased covariance (D, D), as np.cov gives them."""
        if self.count < 2:
            raise MetricsError(f"features: need at least 2 samples for a covariance, got {self.count}")
        return self.mean.copy(), self.scatter / (self.count - 1)
