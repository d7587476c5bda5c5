"""The `webdataset` data source: local WebDataset tar shards, read by datasets' webdataset builder.

    data.source: webdataset
    data.path: /data/shards             # a directory of .tar files, a glob '/data/ffhq-*.tar', or one .tar
    data.image_column: jpg              # the image's extension in the shards (default: the only one)
    data.label_column: cls              # optional: an integer class per sample

A sample is the members sharing one key (`000123.jpg`, `000123.cls`); each tar is one shard, so
whole shards go to each process when the shard count divides the world size (otherwise every
process reads all shards and keeps 1 of every world-size samples). Before training, every tar's
headers are read (cheap: no image data): a damaged tar, which tarfile would silently end early,
is a DataError naming the file and the last good member. A bad image is named by tar and member.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import PurePosixPath

import datasets

from distgan.config import DataConfig
from distgan.data.errors import DataError
from distgan.data.sources import DataSource, Source, files_at
from distgan.registry import SOURCES

TAR_END_SLACK = 20 * 512  # a tar ends with zero blocks padded to a 10 KiB record: at most this much


def tar_files(path: str) -> list[str]:
    """Resolve a .tar file, glob or directory to a sorted list of tar files (DataError if none)."""
    return files_at(path, ".tar", "tar shards")


def count_samples(file: str) -> int:
    """The number of samples (distinct keys) in one tar, reading headers only; DataError naming the
    file when the archive is damaged (tarfile stops early at a bad header without an error)."""
    keys, last = set(), None
    try:
        with tarfile.open(file) as archive:
            for member in archive:
                if member.isfile():
                    name = PurePosixPath(member.name)
                    keys.add(str(name.parent / name.name.split(".", 1)[0]))
                    last = member.name
            end = archive.offset
    except (tarfile.TarError, OSError) as err:
        raise DataError(
            f"data.path: {file} is not a readable tar file ({type(err).__name__}: {err})"
        ) from None
    size = os.path.getsize(file)
    with open(file, "rb") as stream:
        stream.seek(end)
        tail = stream.read(TAR_END_SLACK + 1)
    if len(tail) > TAR_END_SLACK or tail.strip(b"\0"):
        after = f"after member {last!r}" if last else "at its first member"
        raise DataError(
            f"data.path: {file} is damaged {after} ({size - end} bytes cannot be read as tar members); "
            f"re-create the shard or remove it from the data"
        )
    return len(keys)


def _image_column(features: datasets.Features, wanted: str, where: str) -> str:
    """data.image_column, or the only image column when the default 'image' is not in the shards."""
    if wanted in features:
        return wanted
    images = [name for name, feature in features.items() if isinstance(feature, datasets.Image)]
    if wanted == "image" and len(images) == 1:
        return images[0]
    raise DataError(
        f"data.image_column: {wanted!r} is not a member extension in {where!r}; available: "
        f"{', '.join(name for name in features if not name.startswith('__'))}"
    )


def open_webdataset(data: DataConfig, world_size: int) -> Source:
    files = tar_files(data.path)
    num_rows = sum(count_samples(file) for file in files)
    try:
        dataset = datasets.load_dataset(
            "webdataset", data_files={data.split: files}, split=data.split, streaming=True
        )
    except Exception as err:  # noqa: BLE001 - unreadable shards are a user problem, not a bug
        raise DataError(
            f"data.path: cannot read tar shards at {data.path!r}: {type(err).__name__}: {err}"
        ) from None
    if dataset.features is None:
        raise DataError(f"data.path: {data.path!r} holds no samples")
    image_column = _image_column(dataset.features, data.image_column, data.path)
    if isinstance(dataset.features[image_column], datasets.Image):
        dataset = dataset.cast_column(image_column, datasets.Image(decode=False))

    def name_member(row: dict) -> dict:
        # A bad image is then reported as "file <tar>, member <name>".
        image = row[image_column]
        if isinstance(image, dict):
            image = {"bytes": image.get("bytes"), "path": f"{row['__url__']}, member {image.get('path')}"}
        return {image_column: image}

    dataset = dataset.map(name_member, features=dataset.features)
    return Source(dataset, data.path, image_column, data.label_column, num_rows=num_rows)


SOURCES.register("webdataset", DataSource(open_webdataset))
