"""The `lmdb` data source: encoded images stored as the values of an LMDB database (LSUN's format).

    data.source: lmdb
    data.path: /data/lsun/bedroom_train_lmdb   # the database directory (data.mdb, lock.mdb)

Needs the `lmdb` package (`pip install 'distgan[lsun]'`). Every value is one encoded image (LSUN:
WebP); the keys are listed once, in key order, and dealt into interleaved shards streamed through
`IterableDataset.from_generator`, so the per-process split, shuffle and exact resume of
image_stream.py apply unchanged. Usually read once by `distgan prepare` into 256 px shards. A value
that is not an image is named by its key, or skipped and counted with data.on_bad_example=skip.
"""

from __future__ import annotations

from pathlib import Path

import datasets

from distgan.config import DataConfig
from distgan.data.errors import DataError
from distgan.data.sources import DataSource, Source
from distgan.registry import SOURCES

SHARDS_PER_PROCESS = 16  # as the zip source: whole shards per process, shards mixed by the shuffle


def _lmdb():
    try:
        import lmdb
    except ImportError:
        raise DataError(
            "data.source=lmdb needs the lmdb package: pip install 'distgan[lsun]' (or export the database "
            "to image files and use data.source=imagefolder)"
        ) from None
    return lmdb


_OPEN: dict[str, object] = {}  # LMDB allows one open environment per database and process: share it


def _open(path: str):
    if path in _OPEN:
        return _OPEN[path]
    lmdb = _lmdb()
    folder = Path(path).expanduser()
    if not (folder / "data.mdb").is_file():
        raise DataError(
            f"data.path: {path!r} is not an LMDB database (no data.mdb in it); valid: the database "
            f"directory, e.g. bedroom_train_lmdb"
        )
    try:
        _OPEN[path] = lmdb.open(str(folder), readonly=True, lock=False, readahead=False, max_readers=64)
    except lmdb.Error as err:
        raise DataError(
            f"data.path: cannot open the LMDB database {path!r} ({type(err).__name__}: {err})"
        ) from None
    return _OPEN[path]


def _rows(shards: list[list[bytes]], path: str):
    """Rows of the keys of `shards` (datasets hands each shard its own sub-list)."""
    with _open(path).begin(buffers=False) as txn:
        for keys in shards:
            for key in keys:
                name = key.decode(errors="replace")
                yield {"image": {"bytes": txn.get(key) or b"", "path": f"{path}, key {name}"}}


def open_lmdb(data: DataConfig, world_size: int) -> Source:
    with _open(data.path).begin() as txn:
        keys = list(txn.cursor().iternext(keys=True, values=False))
    if not keys:
        raise DataError(f"data.path: the LMDB database {data.path!r} holds no entries")
    num_shards = min(len(keys), SHARDS_PER_PROCESS * world_size)
    dataset = datasets.IterableDataset.from_generator(
        _rows,
        features=datasets.Features({"image": datasets.Image()}),
        gen_kwargs={"shards": [keys[k::num_shards] for k in range(num_shards)], "path": data.path},
    )
    return Source(dataset, data.path, "image", data.label_column, num_rows=len(keys))


SOURCES.register("lmdb", DataSource(open_lmdb))
