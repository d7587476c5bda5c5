"""Open the configured data source as a raw `datasets.IterableDataset` (images not decoded).

Each source is an entry of `distgan.registry.SOURCES` (`DataSource`): it opens its rows from the
data section (and the world size, where it matters) and says what it needs of the config. The
built-ins registered here all go through `datasets.load_dataset(..., streaming=True)`: the Hub
(`load_dataset(path, name, split=...)`), local parquet files, an image folder, the output of
`distgan.data.prepare`, and the embedded real-MNIST sample (a parquet file in the Hub
`ylecun/mnist` schema shipped in distgan/data/assets/); toy 2D points are registered in toy.py.
`open_source` checks the columns, cheaply, so a wrong column name fails before any compute is
spent. This module does not shuffle, shard, decode or batch: the stream does that for every source.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

from distgan.config import ConfigError, DataConfig, ExperimentConfig
from distgan.data.errors import DataError
from distgan.registry import SOURCES

EMBEDDED_PATH = Path(__file__).resolve().parent / "assets" / "mnist_5k.parquet"
PREPARED_META = "prepared.json"  # written by distgan.data.prepare next to its shards
PREPARED_FORMAT = "distgan-prepared-v1"


@dataclass
class Source:
    """A raw stream of rows {image_column: undecoded image, label_column: int} plus where it came from."""

    dataset: datasets.IterableDataset
    where: str  # what to print: Hub id, file, glob or directory
    image_column: str
    label_column: str | None
    prepared: dict | None = None  # the prepared.json of a prepared source
    local_files: list[str] = field(default_factory=list)  # parquet files, to name the file of a bad row
    num_rows: int | None = None  # rows in the local files (parquet metadata), None when unknown

    @property
    def num_shards(self) -> int:
        return int(self.dataset.num_shards)


def require_path(data: DataConfig, prefix: str = "data") -> None:
    """The config check of a source that reads data.path."""
    if not data.path:
        raise ConfigError(f"{prefix}.path: is required when data.source is {data.source!r}")


def no_check(data: DataConfig, prefix: str = "data") -> None:
    """The config check of a source that needs nothing of the data section."""


@dataclass(frozen=True)
class DataSource:
    """What a data source registers: how it opens its rows, and what it needs of the config."""

    # (data section, world size) -> the raw rows; None for a source of toy points (its own stream)
    open: Callable[[DataConfig, int], Source] | None
    check: Callable[[DataConfig, str], None] = require_path  # ConfigError naming the key
    labelled: bool = False  # every example has a class label even without data.label_column
    channels: int | None = None  # the model.channels its images need (None: any, converted to fit)


def offline_mode() -> bool:
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("HF_DATASETS_OFFLINE", ""))
    return any(flag.upper() in ("1", "ON", "YES", "TRUE") for flag in flags) or bool(
        datasets.config.HF_HUB_OFFLINE
    )


def files_at(path: str, suffix: str, what: str, key: str = "data.path") -> list[str]:
    """A `suffix` file, a glob or a directory (searched recursively) as a sorted list of files;
    DataError naming `key` if there are none."""
    p = Path(path).expanduser()
    if p.is_dir():
        files = sorted(str(f) for f in p.rglob(f"*{suffix}"))
    elif any(ch in path for ch in "*?["):
        files = sorted(glob.glob(os.path.expanduser(path), recursive=True))
    else:
        files = [str(p)] if p.is_file() else []
    if not files:
        raise DataError(
            f"{key}: no {what} at {path!r}; valid: a {suffix} file, a glob such as "
            f"'dir/*{suffix}', or a directory containing {suffix} files"
        )
    return files


def parquet_files(path: str, key: str = "data.path") -> list[str]:
    return files_at(path, ".parquet", "parquet files", key)


def check_parquet_files(files: list[str]) -> int:
    """Read each file's footer (cheap): DataError naming a file that is not parquet; total rows."""
    rows = 0
    for file in files:
        try:
            rows += pq.ParquetFile(file).metadata.num_rows
        except (pa.ArrowException, OSError) as err:
            raise DataError(
                f"data.path: {file} is not a valid parquet file ({type(err).__name__}: {err}); "
                f"re-create it or remove it from the data"
            ) from None
    return rows


def _broken_file(files: list[str]) -> str | None:
    """The first of `files` whose data does not decode (error path only: it reads the files)."""
    for file in files:
        try:
            for _ in pq.ParquetFile(file).iter_batches():
                pass
        except (pa.ArrowException, OSError):
            return file
    return None


def read_rows(source: Source, rows: Iterable) -> Iterator:
    """Iterate `rows` of `source`; local parquet data that fails to decode becomes a DataError naming
    the file (a header can be intact while a page in the middle is corrupt)."""
    iterator = iter(rows)
    while True:
        try:
            row = next(iterator)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as err:
            if not source.local_files:
                raise
            file = _broken_file(source.local_files) or f"one of the files at {source.where!r}"
            raise DataError(
                f"data.path: {file} is not a valid parquet file: its data cannot be decoded "
                f"({type(err).__name__}: {' '.join(str(err).split())}); re-create it or remove it from the data"
            ) from None
        yield row


def _load_hub(data: DataConfig, world_size: int) -> datasets.IterableDataset:
    try:
        if data.streaming:
            return datasets.load_dataset(data.path, data.name, split=data.split, streaming=True)
        full = datasets.load_dataset(data.path, data.name, split=data.split)
        # Enough contiguous shards that whole shards go to each process and the shuffle mixes them.
        shards = max(1, min(len(full), 16 * world_size))
        return full.to_iterable_dataset(num_shards=shards)
    except Exception as err:  # noqa: BLE001 - every Hub failure becomes one clear user error
        reason = f"{type(err).__name__}: {err}"
        offline = " (offline mode is on: HF_HUB_OFFLINE / HF_DATASETS_OFFLINE)" if offline_mode() else ""
        raise DataError(
            f"data.path: could not load Hub dataset {data.path!r} (name={data.name!r}, "
            f"split={data.split!r}){offline}: {reason}\n"
            f"To train from local files instead: data.source=parquet data.path=/path/to/*.parquet "
            f"(or data.source=imagefolder data.path=DIR, or data.source=prepared data.path=DIR made by "
            f"`python -m distgan.data.prepare`), or pre-download the dataset into the Hugging Face cache "
            f"with data.streaming=false while online."
        ) from None


def _load_local_parquet(files: list[str], split: str, where: str) -> datasets.IterableDataset:
    try:
        return datasets.load_dataset("parquet", data_files={split: files}, split=split, streaming=True)
    except Exception as err:  # noqa: BLE001 - unreadable files are a user problem, not a bug
        raise DataError(
            f"data.path: cannot read parquet data at {where!r}: {type(err).__name__}: {err}"
        ) from None


def _load_prepared(path: str) -> tuple[datasets.IterableDataset, dict, list[str]]:
    meta_file = Path(path).expanduser() / PREPARED_META
    if not meta_file.is_file():
        raise DataError(
            f"data.path: {path!r} is not a prepared dataset (no {PREPARED_META}); create one with "
            f"`python -m distgan.data.prepare --config FILE --out {path} --num-shards K`"
        )
    meta = json.loads(meta_file.read_text())
    if meta.get("format") != PREPARED_FORMAT:
        raise DataError(
            f"data.path: {meta_file} has format {meta.get('format')!r}, expected {PREPARED_FORMAT!r}"
        )
    files = [str(Path(path).expanduser() / name) for name in meta["files"]]
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise DataError(f"data.path: prepared shard missing: {missing[0]} (listed in {meta_file})")
    return _load_local_parquet(files, "train", path), meta, files


def _check_prepared(cfg: ExperimentConfig, meta: dict, wants_labels: bool) -> None:
    want = {"resolution": cfg.data.resolution, "channels": cfg.model.channels}
    for key, value in want.items():
        if meta[key] != value:
            owner = "data.resolution" if key == "resolution" else "model.channels"
            raise DataError(
                f"{owner}: the prepared data at {cfg.data.path!r} has {key}={meta[key]}, the config asks for "
                f"{value}; re-run `python -m distgan.data.prepare` with this config or set {owner}={meta[key]}"
            )
    if wants_labels and not meta.get("label_column"):
        raise DataError(
            f"data.label_column: the prepared data at {cfg.data.path!r} has no labels; re-run prepare with "
            f"data.label_column set"
        )


def _columns(ds: datasets.IterableDataset, where: str) -> list[str]:
    if ds.features is not None:
        return list(ds.features)
    first = next(iter(ds.take(1)), None)  # some streamed formats only know their columns by reading
    if first is None:
        raise DataError(f"data.path: {where!r} holds no examples (split may be empty)")
    return list(first)


def open_embedded(data: DataConfig, world_size: int) -> Source:
    where = str(EMBEDDED_PATH)
    # One file of 4 row groups: shard per row group so 1, 2 or 4 processes read whole shards.
    ds = _load_local_parquet([where], "train", where).reshard()
    return Source(ds, where, data.image_column, data.label_column or "label", local_files=[where])


def open_hub(data: DataConfig, world_size: int) -> Source:
    return Source(_load_hub(data, world_size), data.path, data.image_column, data.label_column)


def open_parquet(data: DataConfig, world_size: int) -> Source:
    files = parquet_files(data.path)
    num_rows = check_parquet_files(files)  # an empty or foreign file fails here, naming it
    ds = _load_local_parquet(files, data.split, data.path)
    return Source(ds, data.path, data.image_column, data.label_column, local_files=files, num_rows=num_rows)


def open_imagefolder(data: DataConfig, world_size: int) -> Source:
    where = data.path
    if not Path(where).expanduser().is_dir():
        raise DataError(f"data.path: image folder {where!r} is not a directory")
    try:
        ds = datasets.load_dataset("imagefolder", data_dir=where, split=data.split, streaming=True)
    except Exception as err:  # noqa: BLE001
        raise DataError(
            f"data.path: cannot read image folder {where!r}: {type(err).__name__}: {err}"
        ) from None
    return Source(ds, where, data.image_column, data.label_column)


def open_prepared(data: DataConfig, world_size: int) -> Source:
    ds, meta, files = _load_prepared(data.path)
    label = "label" if data.label_column else None  # prepare writes the columns `image` and `label`
    return Source(ds, data.path, "image", label, prepared=meta, local_files=files)


SOURCES.register("embedded", DataSource(open_embedded, check=no_check, labelled=True))
SOURCES.register("hub", DataSource(open_hub))
SOURCES.register("parquet", DataSource(open_parquet))
SOURCES.register("imagefolder", DataSource(open_imagefolder))
SOURCES.register("prepared", DataSource(open_prepared))


def open_source(cfg: ExperimentConfig, world_size: int = 1) -> Source:
    """Open cfg.data's source as raw rows; raises DataError for a missing source or column."""
    opener = SOURCES.get(cfg.data.source).open
    if opener is None:
        raise DataError(f"data.source: {cfg.data.source!r} is not an image source")
    source = opener(cfg.data, world_size)
    if source.prepared:
        _check_prepared(cfg, source.prepared, wants_labels=cfg.data.label_column is not None)
    ds, where, image_col, label_col = source.dataset, source.where, source.image_column, source.label_column
    available = _columns(ds, where)
    for key, column in (("data.image_column", image_col), ("data.label_column", label_col)):
        if column is not None and column not in available:
            raise DataError(
                f"{key}: column {column!r} not found in {where!r}; available columns: {', '.join(available)}"
            )
    keep = [image_col] + ([label_col] if label_col else [])
    ds = ds.select_columns(keep)
    if ds.features is not None and isinstance(ds.features.get(image_col), datasets.Image):
        # Decode ourselves (in DataLoader workers) so a corrupt image is reported, not crashed on.
        ds = ds.cast_column(image_col, datasets.Image(decode=False))
    num_rows = source.num_rows
    if num_rows is None and source.local_files:
        num_rows = check_parquet_files(source.local_files)  # footers only: cheap
    return dataclasses.replace(source, dataset=ds, num_rows=num_rows)


def locate_row(
    files: list[str], image_column: str, image: Any, label_column: str | None = None, label: Any = None
) -> str | None:
    """Name the file and row holding `image` (and `label`): error path only, it scans the files."""
    import pyarrow.parquet as pq

    target = image.get("bytes") if isinstance(image, dict) else image
    if not isinstance(target, bytes | bytearray) or not files:
        return None
    columns = [image_column] + ([label_column] if label_column else [])
    for file in files:
        reader = pq.ParquetFile(file)
        row = 0
        for group in range(reader.num_row_groups):
            table = reader.read_row_group(group, columns=columns)
            images = table.column(image_column).to_pylist()
            labels = table.column(label_column).to_pylist() if label_column else [None] * len(images)
            for value, value_label in zip(images, labels, strict=True):
                value = value.get("bytes") if isinstance(value, dict) else value
                if value == target and (label_column is None or value_label == label):
                    return f"file {file}, row {row}"
                row += 1
    return None
