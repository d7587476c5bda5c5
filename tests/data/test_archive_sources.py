"""The zip, webdataset and lmdb sources: per-process split, exact resume, bad members named in one line.

Stand-in data: 200 of the embedded real MNIST digits (20 per class), written as a zip of
class folders, as 4 WebDataset tar shards (`NNNN.png` + `NNNN.cls`) and as an LMDB database
(LSUN's layout: key -> encoded image, no labels), built in tmp.
"""

from __future__ import annotations

import hashlib
import io
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from data_helpers import assert_same_batches, cfg_for, image_keys, take
from PIL import Image
from test_data_resume import resumed
from test_data_sharding import assert_disjoint_and_complete

from distgan.data import DataError, TrainStream, lmdb_source, real_examples
from distgan.data.prepare import prepare
from distgan.data.sources import EMBEDDED_PATH

NUM = 200
GARBAGE = b"\x89PNG\r\n\x1a\n not an image at all"


def digits() -> list[tuple[bytes, int]]:
    """(PNG bytes, label) of 200 real digits, every 25th row (the file is sorted by label)."""
    rows = pq.read_table(EMBEDDED_PATH).to_pylist()[:: 5000 // NUM]
    return [(row["image"]["bytes"], row["label"]) for row in rows]


def write_zip(path: Path, rows, bad: int | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for i, (png, label) in enumerate(rows):
            archive.writestr(f"{label}/{i:04d}.png", GARBAGE if i == bad else png)
    return path


def add_member(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def write_shards(folder: Path, rows, bad: int | None = None) -> Path:
    folder.mkdir()
    per_shard = len(rows) // 4
    for shard in range(4):
        with tarfile.open(folder / f"digits-{shard:03d}.tar", "w") as archive:
            for i in range(shard * per_shard, (shard + 1) * per_shard):
                png, label = rows[i]
                add_member(archive, f"{i:04d}.png", GARBAGE if i == bad else png)
                add_member(archive, f"{i:04d}.cls", str(label).encode())
    return folder


def pixel_key(png: bytes) -> str:
    """The key `image_keys` gives this digit once decoded (its uint8 pixels hashed)."""
    return hashlib.sha1(np.asarray(Image.open(io.BytesIO(png))).tobytes()).hexdigest()


def write_lmdb(folder: Path, rows, bad: int | None = None) -> Path:
    lmdb = pytest.importorskip("lmdb", reason="the lsun extra: pip install 'distgan[lsun]'")
    env = lmdb.open(str(folder), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for i, (png, _) in enumerate(rows):
            txn.put(f"{i:04d}".encode(), GARBAGE if i == bad else png)
    env.close()
    return folder


class Archives(dict):
    """source -> path of the stand-in, written on first use (without lmdb only the lmdb tests skip)."""

    def __init__(self, out: Path, rows, bad: int | None, prefix: str):
        super().__init__()
        self.out, self.rows, self.bad, self.prefix = out, rows, bad, prefix

    def __missing__(self, source: str) -> str:
        writers = {"zip": write_zip, "webdataset": write_shards, "lmdb": write_lmdb}
        names = {
            "zip": f"{self.prefix}.zip",
            "webdataset": f"{self.prefix}_shards",
            "lmdb": f"{self.prefix}_lmdb",
        }
        self[source] = str(writers[source](self.out / names[source], self.rows, bad=self.bad))
        return self[source]


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> Archives:
    return Archives(tmp_path_factory.mktemp("archives"), digits(), None, "digits")


LABEL_COLUMN = {"zip": "label", "webdataset": "cls", "lmdb": None}


def source_cfg(source: str, path: str, *overrides: str):
    label = [f"data.label_column={LABEL_COLUMN[source]}"] if LABEL_COLUMN[source] else []
    return cfg_for(f"data.source={source}", f"data.path={path}", *label, *overrides)


@pytest.mark.parametrize("source", ["zip", "webdataset"])
def test_labels_and_images_are_the_digits(source, archives):
    got = real_examples(source_cfg(source, archives[source]), NUM)
    want = {pixel_key(png): label for png, label in digits()}
    assert [want[key] for key in image_keys(got.images)] == got.labels.tolist()


@pytest.mark.parametrize("source", ["zip", "webdataset", "lmdb"])
def test_two_processes_split_by_shards_disjoint_and_complete(source, archives):
    everything = set(image_keys(real_examples(source_cfg(source, archives[source]), NUM).images))
    assert len(everything) == NUM
    seen = []
    for rank in (0, 1):
        stream = TrainStream(source_cfg(source, archives[source], "data.batch_size=2"), rank, 2)
        assert stream._impl.split_mode == "shards"
        keys = []
        while True:  # one epoch of this process, one example at a time
            batch = next(stream)
            if stream.state_dict()["epoch"] == 1:
                break
            keys += image_keys(batch.images)
        stream.close()
        seen.append(keys)
    assert_disjoint_and_complete(seen, everything)


@pytest.mark.parametrize("source", ["zip", "webdataset", "lmdb"])
def test_resume_equals_uninterrupted(source, archives):
    # 100 examples per process, local batch 8: stop early and across the epoch boundary (12.5).
    cfg = source_cfg(source, archives[source], "data.batch_size=16", "data.shuffle_buffer=30")
    expected = take(TrainStream(cfg, 1, 2), 20)
    assert not torch.equal(expected[0].images, expected[13].images)
    for stop in (5, 13):
        assert_same_batches(resumed(cfg, 1, 2, stop, 20), expected)


@pytest.fixture(scope="module")
def bad_archives(tmp_path_factory) -> Archives:
    return Archives(tmp_path_factory.mktemp("bad_archives"), digits()[:40], 7, "bad")


@pytest.mark.parametrize("source", ["zip", "webdataset", "lmdb"])
def test_a_corrupt_image_is_named_in_one_line_or_skipped(source, bad_archives):
    label = digits()[7][1]
    member = {
        "zip": f"bad.zip, member {label}/0007.png",
        "webdataset": "digits-000.tar, member 0007.png",
        "lmdb": "bad_lmdb, key 0007",
    }[source]
    cfg = source_cfg(source, bad_archives[source], "data.batch_size=4", "data.shuffle_buffer=0")
    with pytest.raises(DataError) as caught:
        take(TrainStream(cfg, 0, 1), 10)
    assert member in str(caught.value) and "\n" not in str(caught.value)
    skipping = TrainStream(
        source_cfg(source, bad_archives[source], "data.batch_size=4", "data.on_bad_example=skip"), 0, 1
    )
    take(skipping, 10)  # 39 good examples: the epoch ends inside the 10th batch
    assert skipping.stats["skipped_examples"] == 1


def test_an_unreadable_zip_member_is_named(tmp_path):
    rows = digits()[:10]
    path = write_zip(tmp_path / "crc.zip", rows)
    raw = bytearray(path.read_bytes())
    member = f"{rows[3][1]}/0003.png"
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    raw[start + 40] ^= 0xFF  # one flipped byte in the stored data: a bad CRC on read
    path.write_bytes(bytes(raw))
    cfg = source_cfg("zip", str(path), "data.batch_size=2", "data.shuffle_buffer=0")
    with pytest.raises(DataError, match=rf"member '{member}' of .*crc.zip cannot be read \(BadZipFile"):
        take(TrainStream(cfg, 0, 1), 5)


def test_a_damaged_tar_is_named_before_training(tmp_path):
    folder = write_shards(tmp_path / "shards", digits()[:40])
    shard = folder / "digits-002.tar"
    raw = bytearray(shard.read_bytes())
    raw[3 * 1024 : 3 * 1024 + 512] = b"\xff" * 512  # a header in the middle: tarfile would stop here
    shard.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"digits-002.tar is damaged after member"):
        TrainStream(source_cfg("webdataset", str(folder), "data.batch_size=2"), 0, 1)


def test_lmdb_without_its_package_names_the_extra(archives, monkeypatch):
    monkeypatch.setitem(sys.modules, "lmdb", None)  # as if `pip install 'distgan[lsun]'` never ran
    monkeypatch.setattr(lmdb_source, "_OPEN", {})
    with pytest.raises(DataError, match=r"pip install 'distgan\[lsun\]'"):
        TrainStream(source_cfg("lmdb", archives["lmdb"], "data.batch_size=2"), 0, 1)


def test_prepare_reads_an_lmdb_database_into_shards(archives, tmp_path):
    # LSUN's path: `distgan prepare data.source=lmdb ...`, then train from the prepared shards.
    source = ["data.source=lmdb", f"data.path={archives['lmdb']}", "data.num_workers=0"]
    meta = prepare(None, str(tmp_path / "prepared"), 2, source)
    assert (meta["num_examples"], meta["num_shards"]) == (NUM, 2)
    cfg = cfg_for("data.source=prepared", f"data.path={tmp_path / 'prepared'}")
    assert set(image_keys(real_examples(cfg, NUM).images)) == {pixel_key(png) for png, _ in digits()}
