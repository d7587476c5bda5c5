"""Small helpers shared by the data tests (a unique module name: tests/data is put on sys.path by pytest)."""

from __future__ import annotations

import hashlib

import torch

from distgan.config import load_config


def cfg_for(*overrides: str, config: str | None = None):
    return load_config(config, list(overrides))


def image_keys(images: torch.Tensor) -> list[str]:
    """One stable identity per image: a hash of its uint8 pixels."""
    pixels = ((images + 1) * 127.5).round().to(torch.uint8).numpy()
    return [hashlib.sha1(p.tobytes()).hexdigest() for p in pixels]


def take(stream, num_batches: int) -> list:
    return [next(stream) for _ in range(num_batches)]


def assert_same_batches(a: list, b: list) -> None:
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        assert torch.equal(x.images, y.images), f"batch {i}: images differ"
        if x.labels is None:
            assert y.labels is None
        else:
            assert torch.equal(x.labels, y.labels), f"batch {i}: labels differ"
