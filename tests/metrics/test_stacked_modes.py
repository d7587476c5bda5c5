"""The Stacked MNIST mode counter (`stacked_modes`): real stacks cover the modes, a repeating G one.

Floor, measured once with the benchmark's own code (`python benchmarks/heldout_floor.py --stacked`):
26,000 real stacks of a draw the recipe does not train on score 1,000 / 1,000 modes and KL 0.0196
to uniform. Uniform draws alone give 1,000 modes and KL 0.0194 +- 0.0009 at that count (2,000
simulated multinomials), so the classifier's misreadings add next to nothing. The test below uses
1,000 real stacks, where uniform draws give 632 +- 10 modes (593..665 in 2,000 simulations) and
KL 0.573 +- 0.019 (0.509..0.639); its bounds are those +- ~4 standard deviations.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from distgan.config import load_config
from distgan.data import Batch, real_examples
from distgan.metrics import MetricsError, evaluate_generator, valid_metrics
from distgan.metrics.stacked_modes import MnistPerChannel, stacked_modes

STACKED = ["data.source=stacked_mnist", "model.channels=3", "eval.extractor=raw"]
MODES, KL = "stacked_modes_mnist_per_channel", "stacked_kl_mnist_per_channel"


class HandOut(torch.nn.Module):
    """Stands in for a generator: `sample(n)` hands out the next n of `images`, in order."""

    num_classes = 0

    def __init__(self, images: torch.Tensor) -> None:
        super().__init__()
        self.images, self.position = images, 0

    def sample(self, n: int, labels=None, seed=None) -> torch.Tensor:
        out = self.images[self.position : self.position + n]
        self.position += n
        return out


def score(images: torch.Tensor) -> dict:
    """The bench's scoring path; the real side is unread by this metric: any 50 stacks do."""
    cfg = load_config(None, STACKED)
    real = Batch(images[:50], None)
    return evaluate_generator(HandOut(images), cfg, ["stacked_modes"], len(images), real=real)


def test_counts_and_kl_of_known_histograms():
    one = stacked_modes(np.full(300, 123))
    assert one["modes"] == 1 and one["kl"] == pytest.approx(math.log(1000))
    assert [one[f"kl_{c}"] for c in ("red", "green", "blue")] == pytest.approx([math.log(10)] * 3)
    even_half = np.repeat(np.arange(0, 1000, 2), 3)  # 500 modes, 3 samples each: blue always even
    half = stacked_modes(even_half)
    assert half["modes"] == 500 and half["kl"] == pytest.approx(math.log(2))
    assert [half["kl_red"], half["kl_green"], half["kl_blue"]] == pytest.approx([0.0, 0.0, math.log(2)])
    every = stacked_modes(np.arange(1000))
    assert every["modes"] == 1000 and every["kl"] == pytest.approx(0.0, abs=1e-12)
    assert max(every["kl_red"], every["kl_green"], every["kl_blue"]) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(MetricsError, match="0..999"):
        stacked_modes(np.array([1000]))


def test_channel_kls_tell_an_unbalanced_channel_from_dependent_channels():
    # Red always equals green: 100 triples, each channel's digits perfectly even, the triples not.
    tied = np.array([100 * d + 10 * d + b for d in range(10) for b in range(10)])
    result = stacked_modes(tied)
    assert result["kl"] == pytest.approx(math.log(10))
    assert max(result["kl_red"], result["kl_green"], result["kl_blue"]) == pytest.approx(0.0, abs=1e-12)
    # Green only ever 7: the whole triple KL is green's own.
    green_seven = np.array([100 * r + 70 + b for r in range(10) for b in range(10)])
    result = stacked_modes(green_seven)
    assert result["kl_green"] == pytest.approx(math.log(10)) == pytest.approx(result["kl"])
    assert result["kl_red"] == pytest.approx(0.0, abs=1e-12) == pytest.approx(result["kl_blue"], abs=1e-12)


def test_a_generator_that_repeats_one_stack_covers_exactly_one_mode():
    stack = real_examples(load_config(None, [*STACKED, "data.stack_count=10"]), 1).images
    result = score(stack.expand(250, -1, -1, -1))
    assert result[MODES] == 1
    assert result[KL] == pytest.approx(math.log(1000), abs=1e-9)  # all mass in one of 1,000 bins


def test_real_stacks_cover_the_modes_a_uniform_draw_covers():
    unseen = load_config(None, [*STACKED, "data.stack_seed=1", "data.stack_count=1000"])
    result = score(real_examples(unseen, 1000).images)
    assert 590 <= result[MODES] <= 672, result  # uniform draws: 632 +- 10
    assert 0.50 <= result[KL] <= 0.65, result  # uniform draws: 0.573 +- 0.019


def test_the_per_channel_reader_numbers_triples_as_the_source_labels_them():
    stacks = real_examples(load_config(None, [*STACKED, "data.stack_count=200"]), 200)
    _, triples = MnistPerChannel("cpu").embed(stacks.images)
    agree = (triples == stacks.labels).float().mean().item()
    assert agree >= 0.97, agree  # ~99 % per digit; a wrong channel order agrees on ~1 % only


def test_the_counter_applies_to_stacks_only_and_is_not_a_default_of_other_rgb_data():
    cfg = load_config(None, STACKED)
    assert "stacked_modes" not in valid_metrics(cfg)
    with pytest.raises(MetricsError, match="3-channel"):
        MnistPerChannel("cpu").embed(torch.zeros(2, 1, 28, 28))
