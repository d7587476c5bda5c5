"""The real examples metrics compare against: a seeded uniform random sample of the whole source.

Not the first N rows in file order: sorted sources (the embedded MNIST sample is sorted by digit)
would otherwise give a reference of a few classes. One pass over the source keeps a reservoir of N
undecoded rows (Vitter's algorithm R with a seeded generator), then decodes only those; the same
(source, N, seed) always gives the same examples, in file order. The pass reads the whole source
once, which is why the metrics cache the result (distgan.metrics.reference_cache).
"""

from __future__ import annotations

import numpy as np
import torch

from distgan.config import ExperimentConfig
from distgan.data.batch import Batch
from distgan.data.errors import DataError
from distgan.data.image_stream import bad_example_message
from distgan.data.sources import open_source, read_rows
from distgan.data.toy import toy_real_examples
from distgan.data.transforms import ImageSpec, decode_rows, note_conversions


def reference_sample(cfg: ExperimentConfig, num: int, seed: int) -> Batch:
    """`num` usable examples drawn uniformly without replacement, seeded by `seed`."""
    if cfg.data.is_toy:
        return toy_real_examples(cfg, num)  # drawn from the mixture itself: already a random sample
    source = open_source(cfg)
    spec = ImageSpec.from_config(cfg, source.image_column, source.label_column, source.prepared is not None)
    rng = np.random.default_rng(seed)
    reservoir: list[tuple] = []
    seen = 0
    for index, row in enumerate(read_rows(source, source.dataset)):
        label = row[source.label_column] if source.label_column else None
        item = (0, index, row[source.image_column], label)
        seen = index + 1
        if index < num:
            reservoir.append(item)
        else:
            slot = int(rng.integers(0, index + 1))
            if slot < num:
                reservoir[slot] = item
    if seen < num:
        raise DataError(f"data.path: {source.where!r} has {seen} examples, {num} were requested")
    reservoir.sort(key=lambda item: item[1])
    images, labels = [], []
    for start in range(0, len(reservoir), 256):
        chunk = decode_rows(reservoir[start : start + 256], spec)
        note_conversions(chunk)
        for bad in chunk["bad"]:
            if cfg.data.on_bad_example == "error":
                raise DataError(bad_example_message(source, bad, f"row {bad['index']} in file order"))
        images.append(chunk["images"])
        labels.append(chunk["labels"])
    out_labels = None if source.label_column is None else torch.cat(labels)
    return Batch(images=torch.cat(images), labels=out_labels)
