"""Distributed evaluation equals single-process evaluation on the same samples."""

import json

import metrics_eval_worker  # tests/metrics is on sys.path (pytest rootdir-relative import)
import numpy as np
import pytest
import torch

from distgan.config import load_config
from distgan.data import evaluation_data, toy_modes
from distgan.metrics import evaluate_generator
from distgan.metrics.evaluation import embed_shared
from distgan.metrics.extractors import RawExtractor
from tests.launching import accelerate_launch, run
from tests.metrics.thread_world import run_ranks


class FifteenModes(torch.nn.Module):
    """Seeded samples from 15 of the 25 grid modes: every metric is far from its extreme."""

    num_classes = 0

    def sample(self, n, labels=None, seed=None):
        means, std = toy_modes("grid25")
        rng = np.random.default_rng(seed)
        points = means[rng.integers(0, 15, size=n)] + std * rng.normal(size=(n, 2))
        return torch.from_numpy(points).float()


def assert_same_results(got: dict, expected: dict, rel: float, abs_tol: float = 0.0) -> None:
    assert set(got) == set(expected)
    for key, value in expected.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, rel=rel, abs=abs_tol), key
        else:
            assert got[key] == value, key


def run_world(world_size: int, **kwargs) -> dict:
    results = run_ranks(
        world_size,
        lambda rank, size, gather: evaluate_generator(rank=rank, world_size=size, gather=gather, **kwargs),
    )
    assert all(r == {} for r in results[1:])
    return results[0]


@pytest.mark.parametrize("world_size", [2, 3, 5])
def test_sharded_evaluation_equals_single_process_for_uneven_shares(world_size):
    cfg = load_config(None, ["data.source=toy", "data.path=grid25", "model.arch=mlp"])
    generator = FifteenModes()
    # 1,100 samples = 5 chunks (the last one partial): with 3 or 5 ranks some get fewer or one.
    kwargs = dict(
        generator=generator,
        cfg=cfg,
        metrics=["fd", "kid", "precision_recall", "mode_coverage"],
        num=1100,
        kid_subsets=5,
    )
    kwargs["real"], kwargs["modes"] = evaluation_data(cfg, 1100)
    single = evaluate_generator(**kwargs)
    sharded = run_world(world_size, **kwargs)
    assert_same_results(sharded, single, rel=1e-9)
    assert single["modes_captured"] == 15 and 0.2 < single["recall_raw"] < 0.9


@pytest.mark.slow
def test_two_processes_equal_one_process(tmp_path):
    out = tmp_path / "two.json"
    run(accelerate_launch(2, "tests/metrics/metrics_eval_worker.py", str(out)), timeout=180)
    two = json.loads(out.read_text())
    assert two.pop("world_size") == 2
    one = metrics_eval_worker.evaluate()
    # Same samples, same order; only float round-off of another thread count may differ.
    assert_same_results(two, one, rel=1e-5, abs_tol=1e-7)
    assert 0.05 < one["precision_mnist_classifier"] < 0.95  # a number that a lost or reordered row would move


@pytest.mark.parametrize("world_size, total", [(2, 700), (3, 1100), (4, 250), (5, 3)])
def test_gathered_rows_are_every_sample_once_in_index_order(world_size, total):
    extractor = RawExtractor((1,))
    outputs = run_ranks(
        world_size,
        lambda rank, size, gather: embed_shared(
            lambda i, start, stop: torch.arange(start, stop, dtype=torch.float32)[:, None],
            total, extractor, None, rank, size, gather, torch.device("cpu"),
        )[0],
    )  # fmt: skip
    for out in outputs:  # every rank holds the full, ordered result (gather is an all-gather)
        assert torch.equal(out[:, 0], torch.arange(total, dtype=torch.float32))
