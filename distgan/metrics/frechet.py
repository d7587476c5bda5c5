"""Fréchet distance between two feature sets (FID when the features are Inception pool features).

FD = |mu_a - mu_b|^2 + tr(C_a) + tr(C_b) - 2 tr((C_a C_b)^(1/2)).
Pure numpy in float64; knows nothing of images, extractors or processes.

Why no scipy.linalg.sqrtm: the product C_a C_b is not symmetric, and its
general matrix square root comes back with spurious imaginary parts and
needs ad-hoc diagonal offsets when a covariance is singular (fewer samples
than feature dimensions, or dead features). Only the trace is needed, and
tr((C_a C_b)^(1/2)) = tr((S C_b S)^(1/2)) with S = C_a^(1/2), where S C_b S is
symmetric positive semi-definite: two symmetric eigendecompositions give a real,
non-negative answer that is exact up to round-off, with no extra dependency.
"""

from __future__ import annotations

import numpy as np

from distgan.metrics.errors import MetricsError


def as_feature_matrix(feats, name: str) -> np.ndarray:
    """Any (N, D) tensor or array -> float64 numpy; a 1-D input is N scalars."""
    if hasattr(feats, "detach"):
        feats = feats.detach().cpu().double().numpy()
    array = np.asarray(feats, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise MetricsError(f"{name}: expected features of shape (N, D), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise MetricsError(f"{name}: features contain NaN or inf (did the generator diverge?)")
    return array


def feature_statistics(feats) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of an (N, D) feature set."""
    array = as_feature_matrix(feats, "features")
    if array.shape[0] < 2:
        raise MetricsError(f"features: need at least 2 samples for a covariance, got {array.shape[0]}")
    return array.mean(axis=0), np.atleast_2d(np.cov(array, rowvar=False))


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric PSD matrix; round-off negatives are clipped to 0."""
    eigvals, eigvecs = np.linalg.eigh((matrix + matrix.T) / 2)
    return (eigvecs * np.sqrt(np.clip(eigvals, 0.0, None))) @ eigvecs.T


def trace_sqrt_product(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
    """tr((cov_a @ cov_b)^(1/2)) through the symmetric form sqrt(A) B sqrt(A)."""
    root_a = _sqrt_psd(cov_a)
    inner = root_a @ cov_b @ root_a
    eigvals = np.linalg.eigvalsh((inner + inner.T) / 2)
    return float(np.sqrt(np.clip(eigvals, 0.0, None)).sum())


def frechet_distance_from_statistics(
    mu_a: np.ndarray, cov_a: np.ndarray, mu_b: np.ndarray, cov_b: np.ndarray
) -> float:
    if mu_a.shape != mu_b.shape or cov_a.shape != cov_b.shape:
        raise MetricsError(f"feature dimensions differ: {mu_a.shape} vs {mu_b.shape}")
    mean_term = float(np.sum((mu_a - mu_b) ** 2))
    cov_term = float(np.trace(cov_a) + np.trace(cov_b)) - 2.0 * trace_sqrt_product(cov_a, cov_b)
    # The true value is >= 0; round-off can leave -1e-12 for identical sets.
    return max(mean_term + cov_term, 0.0)


def frechet_distance(feats_a, feats_b) -> float:
    """Fréchet distance between the Gaussians fitted to two (N, D) feature sets."""
    mu_a, cov_a = feature_statistics(feats_a)
    mu_b, cov_b = feature_statistics(feats_b)
    return frechet_distance_from_statistics(mu_a, cov_a, mu_b, cov_b)
