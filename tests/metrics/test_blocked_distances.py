"""Precision/recall and density/coverage in small row blocks give the values the earlier
implementation (1,024-row blocks, copied below as the reference) gives."""

from __future__ import annotations

import importlib

import pytest
import torch

from distgan.metrics import density_coverage, precision_recall

pr_module = importlib.import_module("distgan.metrics.precision_recall")  # the module, not the function


# --- the earlier implementation, verbatim but for names: the reference the blocked code must match ---
def reference_radii(points, k):
    radii = []
    for start in range(0, points.shape[0], 1024):
        dist = torch.cdist(points[start : start + 1024], points)
        radii.append(dist.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(radii)


def reference_share(queries, points, radii):
    inside = []
    for start in range(0, queries.shape[0], 1024):
        dist = torch.cdist(queries[start : start + 1024], points)
        inside.append((dist <= radii[None, :]).any(dim=1))
    return torch.cat(inside).double().mean().item()


def reference_precision_recall(real, fake, k=3):
    return {
        "precision": reference_share(fake, real, reference_radii(real, k)),
        "recall": reference_share(real, fake, reference_radii(fake, k)),
    }


def reference_density_coverage(real, fake, k=5):
    radii = reference_radii(real, k) * (1 + 1e-6)
    hits = torch.zeros(fake.shape[0], dtype=torch.float64)
    covered = torch.zeros(real.shape[0], dtype=torch.bool)
    for start in range(0, fake.shape[0], 1024):
        inside = torch.cdist(fake[start : start + 1024], real) <= radii[None, :]
        hits[start : start + inside.shape[0]] = inside.sum(dim=1).double()
        covered |= inside.any(dim=0)
    return {"density": hits.sum().item() / (k * fake.shape[0]), "coverage": covered.double().mean().item()}


# --- end of the reference ---


@pytest.fixture(scope="module")
def features():
    generator = torch.Generator().manual_seed(0)
    real = torch.randn(2000, 16, generator=generator, dtype=torch.float64)
    fake = 0.8 * torch.randn(1900, 16, generator=generator, dtype=torch.float64) + 0.3
    return real, fake


def test_blocks_are_bounded_by_entries_not_by_rows():
    assert pr_module.rows_per_block(50_000) * 50_000 <= pr_module.BLOCK_ENTRIES
    assert pr_module.rows_per_block(10) == 4096 and pr_module.rows_per_block(10**9) == 1


def test_blocked_values_equal_the_earlier_implementation_on_2000_points(features, monkeypatch):
    real, fake = features
    expected_pr = reference_precision_recall(real, fake)
    expected_dc = reference_density_coverage(real, fake)
    monkeypatch.setattr(pr_module, "BLOCK_ENTRIES", 333 * 2000)  # 333-row blocks, the last one ragged
    assert pr_module.rows_per_block(2000) == 333
    assert precision_recall(real, fake) == expected_pr
    assert density_coverage(real, fake) == expected_dc
    assert 0.2 < expected_pr["precision"] < 1 and 0.2 < expected_dc["coverage"] < 1  # not a degenerate case
