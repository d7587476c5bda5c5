"""Per-process sharding: in one epoch the processes' examples are disjoint and complete."""

from __future__ import annotations

import pytest
from data_helpers import cfg_for, image_keys, take

from distgan.data import TrainStream, real_examples

LOCAL_BATCH = 50  # divides every per-process epoch below (2500 and 1250 examples)


def one_epoch_per_rank(world: int, *overrides: str) -> list[list[str]]:
    seen = []
    for rank in range(world):
        stream = TrainStream(cfg_for(f"data.batch_size={LOCAL_BATCH * world}", *overrides), rank, world)
        per_rank = 5000 // world
        batches = take(stream, per_rank // LOCAL_BATCH)
        state = stream.state_dict()
        assert (state["epoch"], state["index"]) == (0, per_rank), "one epoch should end exactly here"
        seen.append([key for batch in batches for key in image_keys(batch.images)])
        stream.close()
    return seen


def assert_disjoint_and_complete(seen: list[list[str]], everything: set[str]) -> None:
    for i, a in enumerate(seen):
        assert len(set(a)) == len(a), f"rank {i} saw an example twice in one epoch"
        for j, b in enumerate(seen[:i]):
            assert not set(a) & set(b), f"ranks {j} and {i} share examples"
    assert set().union(*map(set, seen)) == everything


@pytest.fixture(scope="module")
def all_mnist() -> set[str]:
    keys = image_keys(real_examples(cfg_for(), 5000).images)
    assert len(set(keys)) == 5000  # the embedded digits are distinct, so keys identify examples
    return set(keys)


@pytest.mark.parametrize("world", [2, 4])
def test_shard_split_is_disjoint_and_complete(world, all_mnist):
    # The embedded file streams as 4 shards (row groups): 2 and 4 processes read whole shards.
    stream = TrainStream(cfg_for(f"data.batch_size={LOCAL_BATCH * world}"), 0, world)
    assert stream._impl.split_mode == "shards"
    assert "split by shards" in stream.describe()
    assert_disjoint_and_complete(one_epoch_per_rank(world), all_mnist)


@pytest.mark.parametrize("world", [2, 4])
def test_skip_split_is_disjoint_and_complete(world, all_mnist, mnist_3files):
    overrides = ("data.source=parquet", f"data.path={mnist_3files}")
    cfg = cfg_for(f"data.batch_size={LOCAL_BATCH * world}", *overrides)
    with pytest.warns(UserWarning, match=f"3 shards are not divisible by {world} processes"):
        stream = TrainStream(cfg, 0, world)
    assert stream._impl.split_mode == "examples"
    assert "split by examples" in stream.describe() and "WARNING" in stream.describe()
    assert_disjoint_and_complete(one_epoch_per_rank(world, *overrides), all_mnist)


@pytest.mark.parametrize("world", [2, 4])
def test_toy_split_is_disjoint_and_complete(world):
    n = 400
    everything, seen = None, []
    for rank in range(world):
        cfg = cfg_for(
            "data.source=toy",
            "data.path=grid25",
            "model.arch=mlp",
            f"data.toy_samples={n}",
            f"data.batch_size={10 * world}",
        )
        batches = take(TrainStream(cfg, rank, world), n // world // 10)
        seen.append([tuple(p) for b in batches for p in b.images.tolist()])
        everything = {tuple(p) for p in real_examples(cfg, n).images.tolist()}
    assert len(everything) == n
    assert_disjoint_and_complete([list(map(str, s)) for s in seen], set(map(str, everything)))


def test_different_epochs_are_shuffled_differently():
    stream = TrainStream(cfg_for("data.batch_size=100"), 0, 1)
    first = [k for b in take(stream, 50) for k in image_keys(b.images)]
    second = [k for b in take(stream, 50) for k in image_keys(b.images)]
    assert set(first) == set(second) and first != second
