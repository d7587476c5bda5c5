"""The `zip` data source: images inside one local .zip file, optionally labelled by their folder.

    data.source: zip
    data.path: /data/ffhq256.zip        # any layout; every image member is one example
    data.label_column: label            # optional: the class is the member's folder (cat/001.png -> cat)

Labels follow datasets' imagefolder convention: the classes are the sorted names of the folders
that hold the images. datasets' own imagefolder builder reads a zip as one shard and, when
streaming, takes the label from the folder of the zip file itself rather than of the member, so
this source lists the members here and streams them through `IterableDataset.from_generator`:
the members are dealt into interleaved shards (every shard holds every class), whole shards go
to each process when their count divides the world size, and the shuffle, split and exact resume
of image_stream.py apply unchanged. A member that cannot be read (a bad CRC, a damaged entry) is
a DataError naming it, or an empty image that data.on_bad_example=skip skips and counts.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path, PurePosixPath

import datasets

from distgan.config import DataConfig
from distgan.data.errors import DataError
from distgan.data.sources import DataSource, Source
from distgan.registry import SOURCES

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
SHARDS_PER_PROCESS = 16  # enough shards that the shuffle mixes them and whole shards go to each process


def member_label(name: str) -> str:
    """The class of a member: the name of the folder holding it ('' at the zip's root)."""
    return PurePosixPath(name).parent.name


def image_members(archive: zipfile.ZipFile) -> list[str]:
    """The image members in name order (folders and macOS resource forks left out)."""
    return sorted(
        info.filename
        for info in archive.infolist()
        if not info.is_dir()
        and info.filename.lower().endswith(IMAGE_SUFFIXES)
        and not info.filename.startswith("__MACOSX/")
        and not PurePosixPath(info.filename).name.startswith("._")
    )


def _open_zip(path: str) -> tuple[zipfile.ZipFile, str]:
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"data.path: zip file {path!r} does not exist; valid: a local .zip of images")
    try:
        return zipfile.ZipFile(file), str(file)
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(
            f"data.path: {path!r} is not a readable zip file ({type(err).__name__}: {err})"
        ) from None


def _rows(
    shards: list[list[str]],
    zip_path: str,
    label_column: str | None,
    classes: tuple[str, ...],
    on_bad_example: str,
):
    """Rows of the members of `shards` (datasets hands each shard its own sub-list)."""
    class_index = {name: k for k, name in enumerate(classes)}
    with zipfile.ZipFile(zip_path) as archive:
        for members in shards:
            for name in members:
                try:
                    data = archive.read(name)
                except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as err:
                    if on_bad_example == "error":
                        raise DataError(
                            f"data.path: member {name!r} of {zip_path} cannot be read "
                            f"({type(err).__name__}: {err}); re-create the zip, or set "
                            f"data.on_bad_example=skip to skip and count such members"
                        ) from None
                    data = b""  # undecodable: the stream skips and counts it
                row = {"image": {"bytes": data, "path": f"{zip_path}, member {name}"}}
                if label_column is not None:
                    row[label_column] = class_index[member_label(name)]
                yield row


def open_zip(data: DataConfig, world_size: int) -> Source:
    archive, zip_path = _open_zip(data.path)
    with archive:
        members = image_members(archive)
    if not members:
        raise DataError(f"data.path: {data.path!r} holds no images (looked for {', '.join(IMAGE_SUFFIXES)})")
    classes: list[str] = []
    features = {"image": datasets.Image()}
    if data.label_column is not None:
        classes = sorted({member_label(name) for name in members})
        if "" in classes or len(classes) < 2:
            raise DataError(
                f"data.label_column: the images in {data.path!r} are not in class folders (found "
                f"{len(classes)} folder name(s)); valid: every image in a folder named by its class, "
                f"e.g. cat/001.png, dog/002.png, at least 2 classes (or unset data.label_column)"
            )
        features[data.label_column] = datasets.ClassLabel(names=classes)
    num_shards = min(len(members), SHARDS_PER_PROCESS * world_size)
    shards = [members[k::num_shards] for k in range(num_shards)]  # interleaved: each holds every class
    dataset = datasets.IterableDataset.from_generator(
        _rows,
        features=datasets.Features(features),
        gen_kwargs={
            "shards": shards,
            "zip_path": zip_path,
            "label_column": data.label_column,
            "classes": tuple(classes),  # a tuple: datasets shards over lists only
            "on_bad_example": data.on_bad_example,
        },
    )
    return Source(dataset, data.path, "image", data.label_column, num_rows=len(members))


SOURCES.register("zip", DataSource(open_zip))
