"""KID equals an independent reference: unbiased MMD^2 with the cubic kernel (x.y/d + 1)^3."""

import itertools

import numpy as np
import pytest

from distgan.metrics import kid
from distgan.metrics.kid import mmd2_unbiased


def reference_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Term by term, straight from the definition (Binkowski et al. 2018, eq. 2 with the KID kernel)."""
    d = x.shape[1]
    m, n = len(x), len(y)

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1.0) ** 3

    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
    xy = sum(k(a, b) for a in x for b in y) / (m * n)
    return xx + yy - 2 * xy


@pytest.mark.parametrize("dim, shift", [(3, 0.0), (5, 0.7), (16, 2.0)])
def test_mmd2_and_kid_match_the_reference_on_small_features(dim, shift):
    rng = np.random.default_rng(dim)
    x = rng.normal(size=(12, dim))
    y = rng.normal(size=(12, dim)) * 1.3 + shift
    expected = reference_mmd2(x, y)
    assert mmd2_unbiased(x, y) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    mean, std = kid(x, y)  # whole sets: one estimate
    assert mean == pytest.approx(expected, rel=1e-9, abs=1e-12) and std == 0.0


def test_kid_over_subsets_is_the_mean_and_std_of_reference_values_on_those_subsets():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(20, 4)), rng.normal(size=(25, 4)) + 0.5
    mean, std = kid(x, y, subsets=6, subset_size=8, seed=11)
    # Each estimate is the reference on SOME 8-subset of each set: check the mean against all
    # subsets' range and the value itself against the reference on the subsets the seed picks.
    picks = np.random.default_rng(11)
    values = []
    for _ in range(6):
        a = x[picks.choice(20, 8, replace=False)]
        b = y[picks.choice(25, 8, replace=False)]
        values.append(reference_mmd2(a, b))
    assert mean == pytest.approx(np.mean(values), rel=1e-9)
    assert std == pytest.approx(np.std(values), rel=1e-9)
    assert std > 0
