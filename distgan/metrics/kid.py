"""Kernel Inception Distance (Binkowski et al. 2018): unbiased MMD^2 with a cubic polynomial kernel.

k(x, y) = (x.y / D + 1)^3, averaged over random subsets of both sets. Pure
numpy in float64; the subsets come from a seeded generator so a value is
reproducible. Knows nothing of images, extractors or processes.
"""

from __future__ import annotations

import numpy as np

from distgan.metrics.errors import MetricsError
from distgan.metrics.frechet import as_feature_matrix


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    k = x @ y.T
    k /= x.shape[1]
    k += 1.0
    return k * k * k  # much faster than ** 3 (a general pow) on a million entries


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 estimate between two equal-size samples (diagonal terms excluded)."""
    m = x.shape[0]
    k_xx, k_yy, k_xy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.mean())


def kid(feats_a, feats_b, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """(mean, std) of the unbiased MMD^2 over `subsets` random subsets of `subset_size` from each set.

    subset_size is capped at the smaller set's size; when it covers both sets whole,
    one estimate is computed (std 0). The estimate is unbiased,
    so for two samples of one distribution it scatters around 0 and can be
    slightly negative; that is expected, not an error.
    """
    a = as_feature_matrix(feats_a, "feats_a")
    b = as_feature_matrix(feats_b, "feats_b")
    if a.shape[1] != b.shape[1]:
        raise MetricsError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    if subsets < 1:
        raise MetricsError(f"kid subsets: must be >= 1, got {subsets}")
    m = min(subset_size, a.shape[0], b.shape[0])
    if m < 2:
        raise MetricsError(f"kid: need at least 2 samples per set, got {a.shape[0]} and {b.shape[0]}")
    if m == a.shape[0] == b.shape[0]:
        subsets = 1  # every "subset" would be the whole of both sets: one estimate, std 0
    rng = np.random.default_rng(seed)
    values = [
        mmd2_unbiased(
            a[rng.choice(a.shape[0], m, replace=False)], b[rng.choice(b.shape[0], m, replace=False)]
        )
        for _ in range(subsets)
    ]
    return float(np.mean(values)), float(np.std(values))
