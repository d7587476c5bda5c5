"""Warnings worth one line at the start of a run: data that trains, but probably not as meant.

- a dataset smaller than one global batch (every batch repeats examples);
- source images upscaled more than 2x to data.resolution (blurry training data), judged on the
  first example.
Only what is known cheaply is checked: row counts from parquet metadata or the toy config, one
decoded image. Nothing here raises: a bad example is the stream's to report.
"""

from __future__ import annotations

from distgan.config import ExperimentConfig
from distgan.data.sources import Source, read_rows
from distgan.data.transforms import BadExample, _open

MAX_UPSCALE = 2.0


def _first_image_size(source: Source) -> tuple[int, int] | None:
    row = next(read_rows(source, source.dataset.take(1)), None)
    if row is None:
        return None
    try:
        return _open(row[source.image_column], source.image_column).size
    except BadExample:
        return None


def start_warnings(cfg: ExperimentConfig, source: Source | None) -> list[str]:
    """The warnings for this config and source (None: toy data), each one line."""
    data, notes = cfg.data, []
    rows, where = (data.toy_samples, f"toy {data.path}") if data.is_toy else (None, "")
    if source is not None:
        rows, where = source.num_rows, source.where
    if rows is not None and rows < data.batch_size:
        notes.append(
            f"data.batch_size={data.batch_size} is larger than the whole dataset ({rows} examples in "
            f"{where}): every global batch repeats examples; valid: data.batch_size <= {rows}, or more data"
        )
    if source is not None and source.prepared is None:
        size = _first_image_size(source)
        if size is not None:
            width, height = size
            side = (data.crop_size or min(width, height)) if data.center_crop else min(width, height)
            if data.resolution > MAX_UPSCALE * side:
                notes.append(
                    f"data.resolution={data.resolution}: the first image of {where} is {width}x{height} px, "
                    f"upscaled {data.resolution / side:.1f}x (more than {MAX_UPSCALE:g}x): training images "
                    f"will be blurry; valid: data.resolution <= {int(MAX_UPSCALE * side)}, or larger images"
                )
    return notes
