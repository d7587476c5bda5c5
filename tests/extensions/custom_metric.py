"""A metric added from one file: the mean distance of generated features from the real mean."""

from __future__ import annotations

import numpy as np

from distgan.metrics import Metric, MetricInputs
from distgan.registry import METRICS


def distance_to_real_mean(inputs: MetricInputs) -> dict:
    real_mean, _ = inputs.real_statistics
    fake = inputs.fake_features.double().numpy()
    return {inputs.key("mean_gap"): float(np.linalg.norm(fake - real_mean, axis=1).mean())}


METRICS.register("mean_gap", Metric(distance_to_real_mean, real_features=False, min_samples=10))
