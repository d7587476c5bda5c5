"""The stacked_mnist source: stacks built from a seed, byte for byte; right labels; disjoint shards."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from data_helpers import cfg_for, image_keys, take

from distgan.config import ConfigError
from distgan.data import TrainStream, real_examples
from distgan.data.sources import open_source
from distgan.data.stacked_source import embedded_digits, stack_rows
from distgan.metrics.mnist_classifier import load_mnist_classifier

STACKED = ["data.source=stacked_mnist", "model.channels=3", "data.stack_count=240"]


def source_digest(*overrides: str) -> str:
    """SHA-256 of every row's PNG bytes and label, in source order."""
    source = open_source(cfg_for(*STACKED, "data.stack_count=60", *overrides))
    digest = hashlib.sha256()
    for row in source.dataset:
        digest.update(row["image"]["bytes"])
        digest.update(str(row["label"]).encode())
    return digest.hexdigest()


def test_same_seed_gives_the_same_bytes_and_another_seed_other_stacks():
    first = source_digest("data.stack_seed=3")
    assert source_digest("data.stack_seed=3") == first
    assert source_digest("data.stack_seed=4") != first


def test_each_channel_is_its_embedded_digit_and_the_label_is_the_class_triple():
    digits, classes = embedded_digits()
    picks = stack_rows(240, 0)
    stacks = real_examples(cfg_for(*STACKED), 240)
    pixels = ((stacks.images + 1) * 127.5).round().to(torch.uint8).numpy()  # (240, 3, 28, 28)
    np.testing.assert_array_equal(pixels, digits[picks])
    expected = 100 * classes[picks[:, 0]] + 10 * classes[picks[:, 1]] + classes[picks[:, 2]]
    np.testing.assert_array_equal(stacks.labels.numpy(), expected)


def test_the_classifier_reads_the_stored_triple_from_the_decoded_stacks():
    stacks = real_examples(cfg_for(*STACKED), 100)
    classifier = load_mnist_classifier()
    with torch.no_grad():
        per_channel = classifier(stacks.images.reshape(-1, 1, 28, 28)).argmax(1).reshape(-1, 3)
    read = (per_channel * torch.tensor([100, 10, 1])).sum(1)
    agree = (read == stacks.labels).float().mean().item()
    assert agree >= 0.97, agree  # the classifier is ~99 % right per digit: ~97 % of whole triples at worst


def test_a_one_channel_model_is_refused_before_any_data_is_read():
    with pytest.raises(ConfigError, match="model.channels=3"):
        cfg_for("data.source=stacked_mnist", "model.channels=1")
    with pytest.raises(ConfigError, match="data.stack_count"):
        cfg_for(*STACKED, "data.stack_count=0")


@pytest.mark.parametrize("world", [2, 3])
def test_each_process_reads_a_disjoint_part_and_together_all_stacks(world):
    # 480 stacks make 16 equal shards per process for 2 and 3 processes: one epoch ends on a batch
    count = ["data.stack_count=480"]
    everything = image_keys(real_examples(cfg_for(*STACKED, *count), 480).images)
    assert len(set(everything)) == 480
    local_batch, per_rank = 10, 480 // world
    seen = []
    for rank in range(world):
        cfg = cfg_for(*STACKED, *count, f"data.batch_size={local_batch * world}")
        stream = TrainStream(cfg, rank, world)
        assert stream._impl.split_mode == "shards"
        keys = [key for batch in take(stream, per_rank // local_batch) for key in image_keys(batch.images)]
        assert (stream.state_dict()["epoch"], stream.state_dict()["index"]) == (0, per_rank)
        stream.close()
        assert len(set(keys)) == len(keys), f"rank {rank} saw a stack twice in one epoch"
        seen.append(set(keys))
    for i in range(world):
        for j in range(i):
            assert not seen[i] & seen[j], f"ranks {j} and {i} share stacks"
    assert set().union(*seen) == set(everything)
