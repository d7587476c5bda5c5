"""The image pipeline: shapes, ranges and pixels for MNIST and CelebA; prepare; the embedded sample."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from data_helpers import cfg_for, image_keys
from PIL import Image

from distgan.bench.loader import loader_throughput
from distgan.data import Batch, TrainStream, real_examples, toy_modes
from distgan.data.sources import EMBEDDED_PATH

CELEBA = "configs/celeba_wgan.yaml"


def celeba_cfg(celeba_dir, *extra):
    return cfg_for(
        "data.source=parquet",
        f"data.path={celeba_dir}",
        "data.batch_size=8",
        "data.num_workers=0",
        *extra,
        config=CELEBA,
    )


def test_celeba_pipeline_yields_64px_rgb_in_range(celeba_dir):
    cfg = celeba_cfg(celeba_dir)
    batch = next(TrainStream(cfg, 0, 1))
    assert isinstance(batch, Batch) and batch.labels is None
    assert batch.images.shape == (8, 3, 64, 64) == (8, *cfg.sample_shape)
    assert batch.images.dtype == torch.float32
    assert batch.images.min() >= -1 and batch.images.max() <= 1
    assert batch.images.std() > 0.1  # real photographs, not a constant


def test_celeba_crop_and_resize_match_a_reference(celeba_dir):
    cfg = celeba_cfg(celeba_dir)
    got = real_examples(cfg, 3).images
    first = pq.read_table(sorted(celeba_dir.glob("*.parquet"))[0]).column("image").to_pylist()[:3]
    for row, image in zip(first, got, strict=True):
        photo = Image.open(io.BytesIO(row["bytes"])).convert("RGB")
        assert photo.size == (178, 218)
        square = photo.crop((0, 20, 178, 198))  # central 178x178 of 178x218
        expected = np.asarray(square.resize((64, 64), Image.Resampling.BICUBIC), dtype=np.float32)
        expected = torch.from_numpy(expected / 127.5 - 1).permute(2, 0, 1)
        assert torch.allclose(image, expected, atol=1e-6)


@pytest.mark.parametrize("resolution", [28, 32])
def test_mnist_shapes_and_labels(resolution):
    cfg = cfg_for("data.batch_size=16", f"data.resolution={resolution}")
    batch = next(TrainStream(cfg, 0, 1))
    assert batch.images.shape == (16, 1, resolution, resolution)
    assert batch.images.min() == -1 and batch.images.max() == 1  # MNIST has black and white pixels
    assert batch.labels.dtype == torch.int64 and batch.labels.shape == (16,)
    assert 0 <= int(batch.labels.min()) and int(batch.labels.max()) <= 9


def test_embedded_sample_has_the_hub_mnist_schema_and_is_shuffled():
    import datasets

    ds = datasets.load_dataset("parquet", data_files=str(EMBEDDED_PATH), split="train", streaming=True)
    assert ds.features["image"] == datasets.Image()
    assert ds.features["label"].names == [str(d) for d in range(10)]
    table = pq.read_table(EMBEDDED_PATH)
    assert table.num_rows == 5000 and pq.ParquetFile(EMBEDDED_PATH).metadata.num_row_groups == 4
    first = table.slice(0, 1).to_pylist()[0]
    assert first["image"]["path"] is None and first["image"]["bytes"].startswith(b"\x89PNG")
    labels = np.array(table.column("label").to_pylist())
    assert np.bincount(labels).tolist() == [500] * 10
    for quarter in np.split(labels, 4):  # rows are shuffled: every shard holds every digit
        assert set(quarter.tolist()) == set(range(10))
    assert EMBEDDED_PATH.stat().st_size < 3 * 2**20


def test_real_examples_are_the_first_rows_in_file_order():
    batch = real_examples(cfg_for(), 10)
    table = pq.read_table(EMBEDDED_PATH).slice(0, 10).to_pylist()
    assert batch.labels.tolist() == [row["label"] for row in table]
    pixels = np.stack([np.asarray(Image.open(io.BytesIO(r["image"]["bytes"]))) for r in table])
    assert torch.equal(((batch.images[:, 0] + 1) * 127.5).round().to(torch.uint8), torch.from_numpy(pixels))


def test_prepare_writes_shards_that_train_like_the_raw_source(celeba_dir, tmp_path):
    from distgan.data.prepare import main

    overrides = ["data.source=parquet", f"data.path={celeba_dir}"]
    one = ["--out", str(tmp_path / "one"), "--num-shards", "1", "data.num_workers=1"]  # decode in a worker
    assert main(["--config", CELEBA, *one, *overrides]) == 0
    four = ["--out", str(tmp_path / "four"), "--num-shards", "4", "data.num_workers=0"]
    assert main(["--config", CELEBA, *four, *overrides]) == 0
    meta = json.loads((tmp_path / "four" / "prepared.json").read_text())
    assert meta["num_examples"] == 126 and meta["resolution"] == 64 and meta["channels"] == 3
    sizes = [pq.ParquetFile(tmp_path / "four" / name).metadata.num_rows for name in meta["files"]]
    assert sorted(sizes) == [31, 31, 32, 32]
    raw = real_examples(celeba_cfg(celeba_dir), 126).images
    one = real_examples(celeba_cfg(tmp_path / "one", "data.source=prepared"), 126).images
    assert torch.equal(raw, one)  # same pixels, same order: prepare is the training transform, stored
    four = TrainStream(celeba_cfg(tmp_path / "four", "data.source=prepared"), 1, 2)
    assert "split by shards: rank 1/2 reads 2 of 4 shards" in four.describe()
    assert set(image_keys(next(four).images)) <= set(image_keys(raw))


def test_prepare_refuses_to_overwrite(tmp_path, capsys):
    from distgan.data.prepare import main

    assert main(["--out", str(tmp_path), "--num-shards", "2", "--limit", "10"]) == 0
    assert main(["--out", str(tmp_path), "--num-shards", "2"]) == 2
    assert "already holds a prepared dataset" in capsys.readouterr().err


def test_toy_modes_and_points():
    means, std = toy_modes("ring8")
    assert means.shape == (8, 2) and std == 0.02 and np.allclose(np.linalg.norm(means, axis=1), 2.0)
    means, std = toy_modes("grid25")
    assert means.shape == (25, 2) and std == 0.05 and set(means[:, 0]) == {-4, -2, 0, 2, 4}
    cfg = cfg_for("data.source=toy", "data.path=grid25", "model.arch=mlp", "data.batch_size=256")
    batch = next(TrainStream(cfg, 0, 1))
    assert batch.images.shape == (256, 2) == (256, *cfg.sample_shape) and batch.images.dtype == torch.float32
    nearest = torch.cdist(batch.images.double(), torch.from_numpy(means)).argmin(dim=1)
    assert torch.equal(nearest, batch.labels)  # label = the mode the point was drawn from


def test_loader_throughput_measures_images_per_second():
    assert loader_throughput(cfg_for("data.batch_size=32"), num_batches=5) > 0
