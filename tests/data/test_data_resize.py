"""The data position across a change in the number of processes (no processes started).

N saved positions, resumed on M != N: the new processes together read exactly the rows of the
epoch in progress that no saved process had read, each once; then whole epochs as usual.
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from data_helpers import cfg_for, image_keys, take

from distgan.data import TrainStream
from distgan.data.resplit import next_layers, resplit_rows

IDS = list(range(23))  # an epoch of 23 rows: uneven over 2 and 3 processes


def base(rank: int, world: int) -> list[int]:
    return IDS[rank::world]  # each rank's ordinary stream: a stride of the epoch


def positions(world: int, read: list[int]) -> list[dict]:
    return [{"rank": r, "epoch": 0, "index": n} for r, n in zip(range(world), read, strict=True)]


def read_by(world: int, layers: list) -> list[list[int]]:
    return [list(resplit_rows(base, layers, rank, world)) for rank in range(world)]


@pytest.mark.parametrize("new_world", [1, 3])
def test_two_positions_resplit_over_one_or_three_give_exactly_the_unread_rows(new_world):
    read = [5, 4]  # rank 0 read 5 rows of its stream, rank 1 read 4
    consumed = base(0, 2)[:5] + base(1, 2)[:4]
    epoch, layers = next_layers(positions(2, read))
    shares = read_by(new_world, layers)
    rest = [row for share in shares for row in share]
    assert epoch == 0
    assert Counter(rest) == Counter(set(IDS) - set(consumed))  # each unread row once, nothing else
    assert max(map(len, shares)) - min(map(len, shares)) <= 1  # an even split


def test_a_second_change_within_the_same_epoch_and_a_finished_rank():
    _, first = next_layers(positions(2, [3, 2]))
    shares = read_by(3, first)  # 2 -> 3 processes
    read = [2, 1, 3]
    states = [{"rank": r, "epoch": 0, "index": n, "resplit": first} for r, n in enumerate(read)]
    states[2] = {"rank": 2, "epoch": 1, "index": 1}  # rank 2 had finished epoch 0
    consumed = base(0, 2)[:3] + base(1, 2)[:2] + shares[0][:2] + shares[1][:1] + shares[2]
    epoch, layers = next_layers(states)  # 3 -> 2 processes
    rest = [row for share in read_by(2, layers) for row in share]
    assert (epoch, len(layers)) == (0, 2)
    assert Counter(consumed + rest) == Counter(IDS)


def resume_over(cfg, old_world: int, batches: int, new_world: int, key, epoch_rows: int):
    """Every row key read in epoch 0 by `old_world` processes (`batches` each) and then by
    `new_world` processes resumed from their positions, until epoch 0 is done."""
    seen, states = [], []
    for rank in range(old_world):
        stream = TrainStream(cfg, rank, old_world)
        seen += [k for batch in take(stream, batches) for k in key(batch)]
        states.append(json.loads(json.dumps(stream.state_dict())))
        stream.close()
    remaining = epoch_rows - len(seen)
    for rank in range(new_world):
        stream = TrainStream(cfg, rank, new_world)
        stream.load_resharded(states)
        share, rows = len(range(rank, remaining, new_world)), []  # its share of the rest comes first
        while len(rows) < share:
            rows += key(next(stream))
        seen += rows[:share]
        stream.close()
    return seen


def toy_keys(batch) -> list[bytes]:
    return [point.numpy().tobytes() for point in batch.images]


@pytest.mark.parametrize("new_world", [1, 3])
def test_toy_stream_reads_every_point_of_the_epoch_once_across_the_change(new_world):
    # 90 points, global batch 6: the old processes read 4 batches of 3 each, 66 points remain.
    cfg = cfg_for(
        "data.source=toy", "data.path=ring8", "model.arch=mlp", "data.toy_samples=90", "data.batch_size=6"
    )
    seen = resume_over(cfg, 2, 4, new_world, toy_keys, 90)
    everything = TrainStream(cfg, 0, 1)
    epoch = [k for batch in take(everything, 15) for k in toy_keys(batch)]
    assert len(set(epoch)) == 90
    assert Counter(seen) == Counter(epoch)


@pytest.mark.filterwarnings("ignore:3 shards are not divisible")
@pytest.mark.parametrize("new_world", [1, 3])
def test_image_stream_reads_every_row_of_the_epoch_once_across_the_change(celeba_dir, new_world):
    # 126 photos in 3 files, 2 processes (split by examples), shuffled: 2 x 10 batches of 3 are
    # read before the change, 66 remain.
    cfg = cfg_for(
        f"data.path={celeba_dir}",
        "data.source=parquet",
        "data.batch_size=6",
        "data.shuffle_buffer=40",
        "data.num_workers=0",
        config="configs/celeba_wgan.yaml",
    )
    seen = resume_over(cfg, 2, 10, new_world, lambda batch: image_keys(batch.images), 126)
    everything = TrainStream(cfg, 0, 1)
    epoch = [k for batch in take(everything, 21) for k in image_keys(batch.images)]
    everything.close()
    assert len(set(epoch)) == 126
    assert Counter(seen) == Counter(epoch)


def test_positions_saved_inside_the_resplit_epoch_resume_exactly_on_the_same_world():
    cfg = cfg_for(
        "data.source=toy", "data.path=ring8", "model.arch=mlp", "data.toy_samples=90", "data.batch_size=6"
    )
    states = []
    for rank in range(2):
        stream = TrainStream(cfg, rank, 2)
        take(stream, 4)
        states.append(stream.state_dict())
    straight = TrainStream(cfg, 1, 3)
    straight.load_resharded(states)
    expected = [b.images for b in take(straight, 12)]  # crosses into epoch 1
    first = TrainStream(cfg, 1, 3)
    first.load_resharded(states)
    before = [b.images for b in take(first, 3)]
    second = TrainStream(cfg, 1, 3)
    second.load_state_dict(json.loads(json.dumps(first.state_dict())))
    after = [b.images for b in take(second, 9)]
    assert all(np.array_equal(a, b) for a, b in zip(expected, before + after, strict=True))
