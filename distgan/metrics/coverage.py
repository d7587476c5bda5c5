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


def mode_coverage(points, means, std: float, min_samples: int = 1) -> dict[str, float]:
    """{"modes_captured", "num_modes", "high_quality_fraction"} of 2D `points` for modes `means` (K, 2)."""
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
    }
