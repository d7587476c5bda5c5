"""Fréchet distance and KID on constructed feature sets: zero on themselves, growing with a shift."""

import numpy as np
import pytest
import torch

from distgan.metrics import MetricsError, frechet_distance, kid
from distgan.metrics.frechet import frechet_distance_from_statistics, trace_sqrt_product
from distgan.metrics.kid import mmd2_unbiased


@pytest.fixture(scope="module")
def feats():
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(32, 32)) / 4  # correlated features, like a network's
    return rng.normal(size=(2000, 32)) @ mixing, rng.normal(size=(2000, 32)) @ mixing


def test_fd_of_a_set_with_itself_is_zero(feats):
    a, _ = feats
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(torch.from_numpy(a).float(), torch.from_numpy(a).float()) < 1e-4


def test_fd_grows_with_the_shift_exactly_as_the_squared_mean_difference(feats):
    a, _ = feats
    shifts = [0.1, 0.5, 1.0, 2.0]
    values = [frechet_distance(a, a + s) for s in shifts]
    assert values == sorted(values) and values[0] > 0
    # Same covariance, means apart by s in each of 32 dims: FD = 32 s^2 exactly.
    assert values == pytest.approx([32 * s**2 for s in shifts], rel=1e-6)


def test_fd_of_two_samples_of_one_distribution_is_small(feats):
    a, b = feats
    assert frechet_distance(a, b) < 0.05 * frechet_distance(a, b + 1.0)


def test_fd_matches_the_closed_form_and_scipy_on_non_commuting_covariances():
    rng = np.random.default_rng(1)
    # Diagonal covariances commute: FD = sum (sqrt(v1) - sqrt(v2))^2 + |mu1 - mu2|^2.
    v1, v2 = rng.uniform(0.1, 3, 16), rng.uniform(0.1, 3, 16)
    mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
    expected = np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2) + np.sum((mu1 - mu2) ** 2)
    got = frechet_distance_from_statistics(mu1, np.diag(v1), mu2, np.diag(v2))
    assert got == pytest.approx(expected, rel=1e-9)
    import scipy.linalg as scipy_linalg  # the reference implementation (dev extra)

    x, y = rng.normal(size=(16, 40)), rng.normal(size=(16, 40))
    c1, c2 = x @ x.T / 40, y @ y.T / 40
    reference = np.trace(scipy_linalg.sqrtm(c1 @ c2)).real
    assert trace_sqrt_product(c1, c2) == pytest.approx(reference, rel=1e-7)


def test_fd_stays_finite_and_non_negative_with_singular_covariances():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(10, 64)), rng.normal(size=(10, 64))  # 10 samples, 64 dims: rank 9
    value = frechet_distance(a, b)
    assert np.isfinite(value) and value > 0
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_fd_rejects_nan_features_and_mismatched_dims():
    a = np.ones((5, 3))
    with pytest.raises(MetricsError, match="NaN"):
        frechet_distance(a, np.full((5, 3), np.nan))
    with pytest.raises(MetricsError, match="dimensions differ"):
        frechet_distance(np.random.rand(5, 3), np.random.rand(5, 4))


def test_kid_of_a_set_with_itself_is_near_zero_and_grows_with_a_shift(feats):
    a, b = feats
    shifts = [0.25, 0.5, 1.0, 2.0]
    values = [kid(a, a + s, subsets=10, subset_size=400)[0] for s in shifts]
    assert values == sorted(values) and values[0] > 0
    # Unbiased estimator: a set against itself or a fresh sample scatters around 0
    # (against itself slightly below: shared points enter the cross term with k(x, x)).
    assert abs(kid(a, a, subsets=10, subset_size=400)[0]) < 0.05 * values[1]
    mean, std = kid(a, b, subsets=10, subset_size=400)
    assert abs(mean) < 0.01 * values[1] and 0 < std < 0.05 * values[1]


def test_kid_is_reproducible_and_uses_one_estimate_when_subsets_are_whole_sets(feats):
    a, b = feats
    assert kid(a, b + 0.5, subsets=5, subset_size=300, seed=3) == kid(
        a, b + 0.5, subsets=5, subset_size=300, seed=3
    )
    mean, std = kid(a[:200], b[:200] + 0.5, subsets=50, subset_size=1000)
    assert std == 0.0 and mean == pytest.approx(mmd2_unbiased(a[:200], b[:200] + 0.5), rel=1e-12)
