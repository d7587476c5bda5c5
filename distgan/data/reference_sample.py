"""The real examples metrics compare against, streamed: this process's share in uint8 batches.

`reference_batches(cfg, count, seed, rank, world_size)` yields `(indices, images)` batches of at
most BATCH rows, so memory is bounded by a batch whatever the count:
- count=None ("full"): every row of the split; rank r decodes the rows with index % world_size == r.
- count=N: a seeded uniform random sample without replacement. A first pass keeps a reservoir of
  N row *indices* (Vitter's algorithm R with a seeded generator; the same (source, N, seed) always
  gives the same rows), a second pass decodes only the chosen rows; rank r takes a contiguous block
  of them. Not the first N rows in file order: sorted sources (the embedded MNIST sample is sorted
  by digit) would otherwise give a reference of a few classes.
indices are the rows' positions in file order, so the caller can put gathered rows back in order.
Images are uint8 (n, H, W, C); toy data gives float32 (n, 2) points.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from distgan.config import ExperimentConfig
from distgan.data.batch import Batch
from distgan.data.errors import DataError
from distgan.data.image_stream import bad_example_message
from distgan.data.sources import Source, open_source, read_rows
from distgan.data.toy import toy_real_examples
from distgan.data.transforms import ImageSpec, decode_rows, note_conversions

BATCH = 256  # rows decoded at once: the real side's host memory


def sampled_indices(source: Source, num: int, seed: int) -> np.ndarray:
    """Row indices (sorted) of a seeded uniform sample of `num` rows: one pass, no decoding."""
    rng = np.random.default_rng(seed)
    reservoir = np.zeros(num, dtype=np.int64)
    seen = 0
    for index, _ in enumerate(read_rows(source, source.dataset)):
        seen = index + 1
        if index < num:
            reservoir[index] = index
        else:
            slot = int(rng.integers(0, index + 1))
            if slot < num:
                reservoir[slot] = index
    if seen < num:
        raise DataError(f"data.path: {source.where!r} has {seen} examples, {num} were requested")
    return np.sort(reservoir)


def _share(count: int, rank: int, world_size: int) -> slice:
    per_rank = -(-count // world_size)
    return slice(rank * per_rank, min((rank + 1) * per_rank, count))


def _toy_batches(cfg, count, rank, world_size) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    total = cfg.data.toy_samples if count is None else count
    mine = _share(total, rank, world_size)
    points = toy_real_examples(cfg, total).images[mine]  # small: 2-D points
    for start in range(0, len(points), BATCH):
        rows = torch.arange(mine.start + start, mine.start + min(start + BATCH, len(points)))
        yield rows, points[start : start + BATCH]


def reference_batches(
    cfg: ExperimentConfig, count: int | None, seed: int, rank: int = 0, world_size: int = 1
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """This rank's share of the reference: (row indices, uint8 images (n, H, W, C)) batches."""
    if cfg.data.is_toy:
        yield from _toy_batches(cfg, count, rank, world_size)
        return
    source = open_source(cfg)
    # Labels are not read: class histograms come from the classifier for both sides.
    spec = ImageSpec.from_config(cfg, source.image_column, None, source.prepared is not None)
    if count is None:
        wanted = None
    else:
        chosen = sampled_indices(source, count, seed)[_share(count, rank, world_size)]
        wanted = set(chosen.tolist())
        last = int(chosen[-1]) if len(chosen) else -1
    rows: list[tuple] = []

    def decoded() -> tuple[torch.Tensor, torch.Tensor]:
        chunk = decode_rows(rows, spec, scale=False)
        note_conversions(chunk)
        rows.clear()
        for bad in chunk["bad"]:
            if cfg.data.on_bad_example == "error":
                raise DataError(bad_example_message(source, bad, f"row {bad['index']} in file order"))
        return chunk["indices"], chunk["images"]

    for index, row in enumerate(read_rows(source, source.dataset)):
        if wanted is None:
            if index % world_size != rank:
                continue
        elif index > last:
            break
        elif index not in wanted:
            continue
        rows.append((0, index, row[source.image_column], None))
        if len(rows) == BATCH:
            yield decoded()
    if rows:
        yield decoded()


def reference_sample(cfg: ExperimentConfig, num: int, seed: int) -> Batch:
    """`num` examples drawn uniformly without replacement, seeded by `seed`, in one tensor (float in
    [-1, 1], (N, C, H, W)): for small in-memory uses; evaluation streams `reference_batches`."""
    if cfg.data.is_toy:
        return toy_real_examples(cfg, num)
    images = torch.cat([images for _, images in reference_batches(cfg, num, seed)])
    return Batch(images=images.permute(0, 3, 1, 2).float() / 127.5 - 1.0, labels=None)
