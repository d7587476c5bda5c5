"""Reverse KL of the toy mixtures (PacGAN): KL(mode histogram of high-quality samples || uniform)."""

import math

import numpy as np
import pytest

from distgan.data.toy import toy_modes
from distgan.metrics import MetricsError, mode_coverage
from distgan.metrics.coverage import reverse_kl_to_uniform


def test_high_quality_samples_evenly_in_four_of_eight_modes_give_log_two():
    means, std = toy_modes("ring8")
    points = np.repeat(means[:4], 100, axis=0)  # 100 exact hits on each of modes 0..3
    result = mode_coverage(points, means, std)
    # p = 1/4 on 4 modes: sum 1/4 * log((1/4) / (1/8)) = log 2
    assert result["reverse_kl"] == pytest.approx(math.log(2), abs=1e-12)
    assert result["modes_captured"] == 4


def test_reverse_kl_counts_only_high_quality_samples():
    means, std = toy_modes("ring8")
    hits = np.repeat(means, 50, axis=0)  # even over all 8 modes
    strays = np.repeat(means[:1] + 10 * std, 400, axis=0)  # nearest to mode 0, far outside 3 std
    result = mode_coverage(np.concatenate([hits, strays]), means, std)
    assert result["reverse_kl"] == pytest.approx(0.0, abs=1e-12)
    assert result["high_quality_fraction"] == pytest.approx(400 / 800)


def test_reverse_kl_of_an_uneven_histogram_matches_the_hand_computation():
    # p = (1/2, 1/4, 1/4, 0) over K = 4: 1/2 log 2 + 2 * 1/4 log 1 = 0.5 log 2
    assert reverse_kl_to_uniform([2, 1, 1, 0]) == pytest.approx(0.5 * math.log(2), abs=1e-12)
    assert reverse_kl_to_uniform([0, 7, 0, 0]) == pytest.approx(math.log(4), abs=1e-12)


def test_no_high_quality_sample_reports_the_worst_value_and_bad_histograms_are_rejected():
    means, std = toy_modes("grid25")
    far = np.full((10, 2), 100.0)
    assert mode_coverage(far, means, std)["reverse_kl"] == pytest.approx(math.log(25))
    with pytest.raises(MetricsError, match="histogram"):
        reverse_kl_to_uniform([1, -1])
