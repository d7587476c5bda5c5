"""Mode-collapse measures: class coverage of labelled data and mode coverage of toy 2D mixtures.

class_coverage: how many classes appear among generated samples (as judged by
a classifier) and KL(generated class histogram || real class histogram), the
"reverse KL" that PacGAN reports for stacked MNIST.

mode_coverage: the VEEGAN (Srivastava et al. 2017) / PacGAN (Lin et al. 2018)
metrics for Gaussian-mixture toy data. A sample is *high quality* when it lies
within 3 standard deviations of its nearest mode's mean. A mode is *captured*
when at least `min_samples` high-quality samples are nearest to it; VEEGAN and
PacGAN use 1 ("at least one high quality sample"), which is the default here.
Raise it (e.g. to 20 of 2,500 samples) to ignore modes that only get strays.
It also reports the PacGAN *reverse KL*: with p_k the share of the high-quality
samples whose nearest mode is k (K modes), reverse KL = KL(p || uniform)
= sum_k p_k log(p_k K), in nats, with 0 log 0 = 0. It is 0 when the
high-quality samples spread evenly over all modes and log(K/M) when they
spread evenly over M of the K modes (all in one mode: log K). With no
high-quality sample at all it is reported as log K, the worst value.

Pure numpy; knows nothing of generators, extractors or processes.
"""

from __future__ import annotations

import numpy as np

from distgan.metrics.errors import MetricsError

HIGH_QUALITY_STDS = 3.0  # VEEGAN / PacGAN: within 3 standard deviations of the nearest mode


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def class_coverage(pred_labels, real_labels, num_classes: int) -> dict[str, float]:
    """{"classes_covered", "kl_generated_vs_real"} from generated predictions and real labels.

    Where the real histogram is 0 but generated samples exist (only possible
    with a tiny real set), the real probability is floored at 1e-12, so the
    KL is large but finite (JSON has no infinity).
    """
    pred, real = _as_numpy(pred_labels).astype(np.int64), _as_numpy(real_labels).astype(np.int64)
    for name, labels in (("pred_labels", pred), ("real_labels", real)):
        if labels.ndim != 1 or labels.size == 0:
            raise MetricsError(
                f"class_coverage {name}: expected a non-empty 1-D label array, got {labels.shape}"
            )
        if labels.min() < 0 or labels.max() >= num_classes:
            raise MetricsError(f"class_coverage {name}: labels must be in 0..{num_classes - 1}")
    p_gen = np.bincount(pred, minlength=num_classes) / pred.size
    p_real = np.bincount(real, minlength=num_classes) / real.size
    present = p_gen > 0
    kl = float(np.sum(p_gen[present] * np.log(p_gen[present] / np.maximum(p_real[present], 1e-12))))
    return {"classes_covered": int(present.sum()), "kl_generated_vs_real": kl}


def reverse_kl_to_uniform(per_mode) -> float:
    """KL(histogram `per_mode` normalised || uniform over its K bins), nats; log K for an empty histogram."""
    counts = _as_numpy(per_mode).astype(np.float64)
    if counts.ndim != 1 or counts.size == 0 or (counts < 0).any():
        raise MetricsError(f"reverse_kl_to_uniform: need a 1-D histogram of counts >= 0, got {counts}")
    total = counts.sum()
    if total == 0:
        return float(np.log(counts.size))
    p = counts[counts > 0] / total
    return float(np.sum(p * np.log(p * counts.size)))


def mode_coverage(points, means, std: float, min_samples: int = 1) -> dict[str, float]:
    """{"modes_captured", "num_modes", "high_quality_fraction", "reverse_kl"} of 2D `points` for modes
    `means` (K, 2); reverse_kl as defined in the module docstring (PacGAN)."""
    pts, centres = _as_numpy(points).astype(np.float64), _as_numpy(means).astype(np.float64)
    if pts.ndim != 2 or centres.ndim != 2 or pts.shape[1] != centres.shape[1]:
        raise MetricsError(
            f"mode_coverage: points {pts.shape} and means {centres.shape} must be (N, D), (K, D)"
        )
    if std <= 0 or min_samples < 1:
        raise MetricsError(f"mode_coverage: need std > 0 and min_samples >= 1, got {std}, {min_samples}")
    dist = np.linalg.norm(pts[:, None, :] - centres[None, :, :], axis=2)  # (N, K)
    nearest = dist.argmin(axis=1)
    high_quality = dist[np.arange(len(pts)), nearest] <= HIGH_QUALITY_STDS * std
    per_mode = np.bincount(nearest[high_quality], minlength=len(centres))
    return {
        "modes_captured": int((per_mode >= min_samples).sum()),
        "num_modes": len(centres),
        "high_quality_fraction": float(high_quality.mean()) if len(pts) else 0.0,
        "reverse_kl": reverse_kl_to_uniform(per_mode),
    }
