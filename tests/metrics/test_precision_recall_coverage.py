"""Precision/recall on constructed point sets; class and mode coverage on constructed samples."""

import numpy as np
import pytest

from distgan.data.toy import toy_modes
from distgan.metrics import MetricsError, class_coverage, mode_coverage, precision_recall


def test_identical_sets_have_precision_and_recall_one():
    pts = np.random.default_rng(0).normal(size=(500, 8))
    assert precision_recall(pts, pts, k=3) == {"precision": 1.0, "recall": 1.0}


def test_disjoint_sets_have_precision_and_recall_zero():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(500, 8)), rng.normal(size=(500, 8)) + 50.0
    assert precision_recall(real, fake) == {"precision": 0.0, "recall": 0.0}


def test_half_collapsed_generator_keeps_precision_but_loses_recall():
    rng = np.random.default_rng(2)
    real = np.concatenate([rng.normal(size=(400, 2)), rng.normal(size=(400, 2)) + 20])  # two blobs
    fake = rng.normal(size=(800, 2))  # only the first blob
    pr = precision_recall(real, fake)
    assert pr["precision"] > 0.9
    assert 0.4 < pr["recall"] < 0.6


def test_grid25_samples_from_all_modes_capture_all_with_high_quality():
    means, std = toy_modes("grid25")
    rng = np.random.default_rng(0)
    modes = rng.integers(0, 25, size=2500)
    points = means[modes] + std * rng.normal(size=(2500, 2))
    result = mode_coverage(points, means, std)
    assert result["modes_captured"] == 25 and result["num_modes"] == 25
    # A 2D Gaussian puts 1 - exp(-9/2) = 98.9 % of its mass within 3 std.
    assert result["high_quality_fraction"] > 0.97


def test_grid25_samples_from_ten_modes_capture_ten():
    means, std = toy_modes("grid25")
    rng = np.random.default_rng(1)
    modes = rng.choice(25, size=10, replace=False)[rng.integers(0, 10, size=2500)]
    points = means[modes] + std * rng.normal(size=(2500, 2))
    assert mode_coverage(points, means, std)["modes_captured"] == 10


def test_blurry_samples_are_not_high_quality_and_min_samples_ignores_strays():
    means, std = toy_modes("grid25")
    rng = np.random.default_rng(2)
    spread = rng.uniform(-5, 5, size=(2500, 2))  # lands near modes only by chance
    result = mode_coverage(spread, means, std)
    assert result["high_quality_fraction"] < 0.05
    strays = np.concatenate([np.repeat(means[:3], 30, axis=0), means[3:5]])  # 2 modes hit once
    assert mode_coverage(strays, means, std)["modes_captured"] == 5
    assert mode_coverage(strays, means, std, min_samples=20)["modes_captured"] == 3


def test_class_coverage_counts_classes_and_kl_from_real():
    real = np.repeat(np.arange(10), 100)
    balanced = class_coverage(real.copy(), real, num_classes=10)
    assert balanced == {"classes_covered": 10, "kl_generated_vs_real": pytest.approx(0.0, abs=1e-12)}
    collapsed = class_coverage(np.array([3] * 90 + [7] * 10), real, num_classes=10)
    assert collapsed["classes_covered"] == 2
    expected = 0.9 * np.log(0.9 / 0.1) + 0.1 * np.log(0.1 / 0.1)
    assert collapsed["kl_generated_vs_real"] == pytest.approx(expected)
    with pytest.raises(MetricsError, match="0..9"):
        class_coverage(np.array([10]), real, num_classes=10)
