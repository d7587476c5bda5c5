"""Toy stream epochs: each epoch visits every point once, in a new order."""

import torch

from distgan.config import load_config
from distgan.data import build_train_stream


def test_each_toy_epoch_is_a_new_permutation_of_all_points():
    cfg = load_config(
        None,
        ["data.source=toy", "data.path=ring8", "model.arch=mlp", "data.toy_samples=64", "data.batch_size=16"],
    )
    stream = build_train_stream(cfg, 0, 1)
    epochs = [torch.cat([next(stream).images for _ in range(4)]) for _ in range(3)]
    key = [tuple(map(tuple, e.tolist())) for e in epochs]
    assert all(sorted(k) == sorted(key[0]) for k in key)  # every point once per epoch
    assert len(set(key[0])) == 64
    assert key[0] != key[1] and key[1] != key[2] and key[0] != key[2]  # and in a fresh order
