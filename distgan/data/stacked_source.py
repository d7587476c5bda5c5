"""The `stacked_mnist` data source: three embedded MNIST digits as the R, G and B channels of one image.

    data.source: stacked_mnist
    data.stack_count: 50000   # stacks in one epoch
    data.stack_seed: 0        # which digits make up each stack

Stacked MNIST is the mode-collapse benchmark of VEEGAN and PacGAN: a stack's class is the triple of
its digits' classes, 1,000 modes in all. Stack k takes the digits at rows (i, j, l) of the 5,000
embedded real digits, drawn uniformly with replacement by a numpy generator seeded with
data.stack_seed; its label is the triple as one number, 100 * red + 10 * green + blue. The same
seed gives the same stacks and the same PNG bytes, so nothing needs preparing or storing. The
stacks are dealt into contiguous shards (each a uniform draw of its own), whole shards go to each
process, and the shuffle, split and exact resume of image_stream.py apply unchanged.
"""

from __future__ import annotations

import functools
import io

import datasets
import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from distgan.config import DataConfig
from distgan.data.sources import EMBEDDED_PATH, DataSource, Source, no_check
from distgan.registry import SOURCES

SHARDS_PER_PROCESS = 16  # enough shards that the shuffle mixes them and whole shards go to each process


@functools.cache
def embedded_digits() -> tuple[np.ndarray, np.ndarray]:
    """The embedded real digits as uint8 (N, 28, 28) and their classes (N,), in file order."""
    table = pq.read_table(EMBEDDED_PATH, columns=["image", "label"])
    images = [np.asarray(Image.open(io.BytesIO(cell["bytes"]))) for cell in table.column("image").to_pylist()]
    return np.stack(images), np.asarray(table.column("label").to_pylist(), dtype=np.int64)


def stack_rows(count: int, seed: int) -> np.ndarray:
    """(count, 3) rows of the embedded digits that make up each stack (red, green, blue)."""
    num_digits = len(embedded_digits()[1])
    return np.random.default_rng(seed).integers(0, num_digits, size=(count, 3))


def triple_label(digit_classes: np.ndarray) -> np.ndarray:
    """(..., 3) digit classes -> the stack's class 100 * red + 10 * green + blue."""
    return digit_classes[..., 0] * 100 + digit_classes[..., 1] * 10 + digit_classes[..., 2]


def stack_png(rows: np.ndarray) -> bytes:
    """The PNG of one stack: the digits at `rows` (3,) as its R, G and B channels."""
    pixels = np.ascontiguousarray(np.stack([embedded_digits()[0][r] for r in rows], axis=-1))
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def _rows(spans: list[list[int]], count: int, seed: int):
    """Rows of the stacks in `spans` ([start, stop) ranges; datasets hands each shard its own sub-list)."""
    picks = stack_rows(count, seed)
    labels = triple_label(embedded_digits()[1][picks])
    for start, stop in spans:
        for k in range(start, stop):
            yield {"image": {"bytes": stack_png(picks[k]), "path": None}, "label": int(labels[k])}


def open_stacked(data: DataConfig, world_size: int) -> Source:
    count = data.stack_count
    num_shards = min(count, SHARDS_PER_PROCESS * world_size)
    bounds = np.linspace(0, count, num_shards + 1).astype(int).tolist()
    spans = [[bounds[k], bounds[k + 1]] for k in range(num_shards)]
    dataset = datasets.IterableDataset.from_generator(
        _rows,
        features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")}),
        gen_kwargs={"spans": spans, "count": count, "seed": data.stack_seed},
    )
    where = f"Stacked MNIST ({count} stacks of the embedded digits, seed {data.stack_seed})"
    return Source(dataset, where, "image", data.label_column or "label", num_rows=count)


SOURCES.register("stacked_mnist", DataSource(open_stacked, check=no_check, labelled=True, channels=3))
