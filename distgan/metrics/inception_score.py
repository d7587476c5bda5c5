"""Inception Score (Salimans et al. 2016) from class probabilities of the FID Inception network.

IS = exp(E_x KL(p(y|x) || p(y))), computed on `splits` consecutive parts of the samples and reported
as the mean and std over the parts (10 splits, as in the original code and StyleGAN2-ADA). It only
means something with the standard Inception network's 1008-way probabilities; the evaluation
refuses it for other extractors. Pure numpy in float64.
"""

from __future__ import annotations

import numpy as np

from distgan.metrics.errors import MetricsError

DEFAULT_SPLITS = 10


def inception_score(probabilities, splits: int = DEFAULT_SPLITS) -> tuple[float, float]:
    """(mean, std) of the IS over `splits` parts of (N, K) class probabilities (rows sum to 1)."""
    p = np.asarray(probabilities.detach().cpu() if hasattr(probabilities, "detach") else probabilities)
    p = p.astype(np.float64)
    if p.ndim != 2 or p.shape[0] < splits or splits < 1:
        raise MetricsError(
            f"inception_score: need (N, K) probabilities with N >= splits={splits}, got {p.shape}"
        )
    if not np.isfinite(p).all() or (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise MetricsError("inception_score: rows must be finite probabilities that sum to 1")
    scores = []
    for part in np.array_split(p, splits):
        marginal = part.mean(axis=0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(part > 0, part * (np.log(part) - np.log(marginal)), 0.0).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))
