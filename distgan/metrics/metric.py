"""What a metric is: an entry of `distgan.registry.METRICS`, and what it is handed to compute.

A metric says which data it applies to, which extractor or second network it needs, whether it
needs the real feature rows or only their mean and covariance, and below how many samples its
value means nothing. `compute(inputs)` returns {result key: value}; `inputs.key("fd")` names a
result the way every other metric does (`fid50k_full_inception`). Adding a metric is one file:

    from distgan.metrics import Metric
    from distgan.registry import METRICS
    METRICS.register("mean_norm", Metric(compute=lambda inputs: {...}))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

DATA_KINDS = ("points", "gray", "rgb")  # toy 2-D points, 1-channel images, 3-channel images


@dataclass(frozen=True)
class MetricInputs:
    """Everything a metric may read, on the main process, after both sides are embedded."""

    fake_features: torch.Tensor  # (num, D) generated features, in sample order
    fake_predictions: torch.Tensor | None  # the labeler's classes (num,) or probabilities (num, K)
    real_features: torch.Tensor | None  # (N, D) real features in file order; None: statistics only
    real_statistics: tuple[np.ndarray, np.ndarray]  # mean (D,), covariance (D, D), float64
    real_predictions: torch.Tensor | None  # the labeler's classes of the real rows
    num_classes: int  # classes the labeler predicts (0: none)
    modes: tuple[torch.Tensor, float] | None  # toy mixture (means, std)
    extractor: str  # raw | mnist_classifier | inception
    labeler: str | None
    seed: int  # the evaluation's seed (KID's subsets)
    kid_subsets: int
    # ("fd") -> "fd10k_full_raw", ("kid", "std") -> "kid10k_full_std_raw": count, reference, resize named
    key: Callable[..., str]
    plain_keys: bool  # default reference and resize: also write the keys without a count (fd_raw)


@dataclass(frozen=True)
class Metric:
    compute: Callable[[MetricInputs], dict]
    data: tuple[str, ...] = DATA_KINDS  # data kinds it applies to
    extractors: tuple[str, ...] | None = None  # resolved extractors it needs (None: any)
    labeler: str | None = None  # a second network whose predictions it reads
    real_features: bool = True  # False: the real mean and covariance are enough (a .npz reference)
    min_samples: int = 2  # fewer generated (or real) samples give no meaningful value
    default: bool = True  # in the default list where it applies
