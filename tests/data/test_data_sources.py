"""Every source goes through `datasets` streaming: hub (here a local copy), image folders, parquet."""

from __future__ import annotations

import io

import numpy as np
import pyarrow.parquet as pq
import pytest
from data_helpers import cfg_for, image_keys, take
from PIL import Image

from distgan.data import DataError, TrainStream, real_examples
from distgan.data.sources import EMBEDDED_PATH


@pytest.fixture
def digit_folder(tmp_path):
    """An image folder of 24 real digits in class sub-folders named after the digit."""
    rows = pq.read_table(EMBEDDED_PATH).slice(0, 24).to_pylist()
    for i, row in enumerate(rows):
        folder = tmp_path / "train" / str(row["label"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:03d}.png").write_bytes(row["image"]["bytes"])
    return tmp_path, rows


def test_imagefolder_source_reads_images_and_folder_labels(digit_folder):
    root, rows = digit_folder
    cfg = cfg_for(
        "data.source=imagefolder", f"data.path={root}", "data.label_column=label", "data.batch_size=24"
    )
    batch = next(TrainStream(cfg, 0, 1))
    assert batch.images.shape == (24, 1, 28, 28)
    expected = {}
    for row in rows:
        pixels = np.asarray(Image.open(io.BytesIO(row["image"]["bytes"])), dtype=np.float32) / 127.5 - 1
        (key,) = image_keys(__import__("torch").from_numpy(pixels)[None, None])
        expected[key] = row["label"]
    # ClassLabel indexes the sorted folder names; the folders here are the digits themselves.
    names = sorted({str(r["label"]) for r in rows})
    got = {k: int(names[int(label)]) for k, label in zip(image_keys(batch.images), batch.labels, strict=True)}
    assert got == expected


def test_imagefolder_corrupt_file_is_named(digit_folder):
    root, _ = digit_folder
    bad = root / "train" / "3" / "broken.png"
    bad.write_bytes(b"not a png at all")
    cfg = cfg_for("data.source=imagefolder", f"data.path={root}", "data.batch_size=25", "data.num_workers=1")
    with pytest.raises(DataError, match=f"file {bad}.*column 'image': cannot be decoded as an image"):
        take(TrainStream(cfg, 0, 1), 2)


@pytest.mark.parametrize("streaming", [True, False])
def test_hub_source_path_with_a_local_copy(streaming, mnist_3files, tmp_path, monkeypatch):
    # load_dataset(<local dir>) runs the Hub code path (builder inference, splits) without network.
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    cfg = cfg_for(
        "data.source=hub",
        f"data.path={mnist_3files}",
        f"data.streaming={str(streaming).lower()}",
        "data.label_column=label",
        "data.batch_size=1000",
    )
    stream = TrainStream(cfg, 1, 2)
    seen = {k for b in take(stream, 5) for k in image_keys(b.images)}
    assert len(seen) == 2500 and stream.state_dict()["index"] == 2500
    everything = set(image_keys(real_examples(cfg_for(), 5000).images))
    assert seen < everything
