"""data.mirror: each example is flipped left-right or not by a hash of (seed, rank, epoch, index), so
the choice does not depend on batching or decoding workers, and a resumed stream flips exactly as
an uninterrupted one."""

from __future__ import annotations

import json

import torch
from data_helpers import assert_same_batches, cfg_for, take

from distgan.data import TrainStream

MIRROR = ("data.batch_size=32", "data.shuffle_buffer=200", "data.mirror=true")


def images_of(stream, batches: int) -> torch.Tensor:
    out = torch.cat([b.images for b in take(stream, batches)])
    stream.close()
    return out


def test_each_example_is_itself_or_its_mirror_image_about_half_the_time():
    plain = images_of(TrainStream(cfg_for(*MIRROR[:2]), 0, 1), 4)
    mirrored = images_of(TrainStream(cfg_for(*MIRROR), 0, 1), 4)
    same = (mirrored == plain).flatten(1).all(1)
    flipped = (mirrored == plain.flip(3)).flatten(1).all(1)
    assert (same | flipped).all()
    changed = int((flipped & ~same).sum())  # symmetric digits count as not flipped
    assert 0.3 * len(plain) < changed < 0.7 * len(plain), changed


def test_the_flip_depends_on_the_example_not_on_batching_or_workers():
    reference = images_of(TrainStream(cfg_for(*MIRROR), 1, 2), 4)  # rank 1 of 2, local batch 16
    bigger = images_of(TrainStream(cfg_for(*MIRROR[1:], "data.batch_size=64"), 1, 2), 2)
    assert torch.equal(reference, bigger)
    workers = images_of(TrainStream(cfg_for(*MIRROR, "data.num_workers=2"), 1, 2), 4)
    assert torch.equal(reference, workers)


def test_mirrored_stream_resumes_exactly():
    cfg = cfg_for(*MIRROR)
    expected = take(TrainStream(cfg, 0, 1), 9)
    first = TrainStream(cfg, 0, 1)
    before = take(first, 4)
    state = json.loads(json.dumps(first.state_dict()))
    first.close()
    second = TrainStream(cfg, 0, 1)
    second.load_state_dict(state)
    assert_same_batches(before + take(second, 5), expected)
