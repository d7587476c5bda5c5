"""Exact resume: after load_state_dict each process yields exactly the batches of an uninterrupted run."""

from __future__ import annotations

import json

import pytest
import torch
from data_helpers import assert_same_batches, cfg_for, take

from distgan.data import TrainStream


def resumed(cfg, rank: int, world: int, stop: int, total: int) -> list:
    first = TrainStream(cfg, rank, world)
    before = take(first, stop)
    state = json.loads(json.dumps(first.state_dict()))  # must survive a JSON checkpoint
    first.close()
    second = TrainStream(cfg, rank, world)
    second.load_state_dict(state)
    return before + take(second, total - stop)


# 5000 digits, 2 processes, local batch 32: an epoch is 78.125 batches per process, so the
# stop points cover early, just before and just after an epoch boundary (a batch spanning it).
@pytest.mark.parametrize("workers, ranks, stops", [(0, (0, 1), (13, 78, 79)), (2, (1,), (13, 79))])
def test_embedded_resume_mid_epoch_equals_uninterrupted(workers, ranks, stops):
    # With workers, chunks are decoded ahead of use: the position must still count delivered batches.
    cfg = cfg_for("data.batch_size=64", f"data.num_workers={workers}", "data.shuffle_buffer=500")
    for rank in ranks:
        straight = TrainStream(cfg, rank, 2)
        expected = take(straight, 100)
        straight.close()
        for stop in stops:
            assert_same_batches(resumed(cfg, rank, 2, stop, 100), expected)


@pytest.mark.filterwarnings("ignore:3 shards are not divisible")
def test_resume_in_the_skip_split_celeba_parquet(celeba_dir):
    # 126 photos in 3 files, 2 processes: split by examples; local batch 5 -> 12.6 batches/epoch.
    cfg = cfg_for(
        f"data.path={celeba_dir}",
        "data.source=parquet",
        "data.batch_size=10",
        "data.shuffle_buffer=40",
        "data.num_workers=0",
        config="configs/celeba_wgan.yaml",
    )
    for rank in (0, 1):
        expected = take(TrainStream(cfg, rank, 2), 30)
        for stop in (7, 13):
            assert_same_batches(resumed(cfg, rank, 2, stop, 30), expected)


def test_toy_resume_equals_uninterrupted():
    cfg = cfg_for(
        "data.source=toy", "data.path=ring8", "model.arch=mlp", "data.toy_samples=1000", "data.batch_size=96"
    )
    for rank in range(3):
        expected = take(TrainStream(cfg, rank, 3), 25)  # 333 points per process: crosses epochs
        for stop in (1, 10, 11):
            assert_same_batches(resumed(cfg, rank, 3, stop, 25), expected)


def test_stream_leaves_the_global_torch_rng_alone():
    # The trainer restores RNG state on resume; building and reading the stream must not draw from it.
    for workers in (0, 1):
        before = torch.get_rng_state()
        stream = TrainStream(cfg_for("data.batch_size=16", f"data.num_workers={workers}"), 0, 1)
        take(stream, 3)
        stream.close()
        assert torch.equal(before, torch.get_rng_state())


def test_state_dict_reports_position_and_consumption():
    stream = TrainStream(cfg_for("data.batch_size=64"), 1, 2)
    take(stream, 3)
    state = stream.state_dict()
    assert (state["rank"], state["world_size"], state["epoch"], state["index"]) == (1, 2, 0, 96)
    assert state["examples_consumed"] == 96
    assert stream.stats == {"epoch": 0, "skipped_examples": 0}


def test_resume_with_another_world_size_warns_and_restarts_the_epoch():
    old = TrainStream(cfg_for("data.batch_size=64"), 0, 2)
    take(old, 3)
    new = TrainStream(cfg_for("data.batch_size=64"), 0, 4)
    with pytest.warns(UserWarning, match="restarts at the beginning of epoch 0"):
        new.load_state_dict(old.state_dict())
    fresh = TrainStream(cfg_for("data.batch_size=64"), 0, 4)
    assert_same_batches(take(new, 2), take(fresh, 2))
