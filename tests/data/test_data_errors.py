"""Bad input gives one clear DataError, in the main process, naming file/row/column and what is valid."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
from conftest import BAD_GOOD_ROWS, BAD_ROW
from data_helpers import cfg_for, image_keys, take

from distgan.data import DataError, TrainStream
from distgan.data.sources import EMBEDDED_PATH


def first_error(path, *overrides: str, workers: int = 0) -> str:
    # shuffle_buffer=0: rows arrive in file order, so the bad row's position is known.
    cfg = cfg_for(
        "data.source=parquet",
        f"data.path={path}",
        "data.batch_size=4",
        "data.shuffle_buffer=0",
        f"data.num_workers={workers}",
        *overrides,
    )
    stream = TrainStream(cfg, 0, 1)
    with pytest.raises(DataError) as caught:
        take(stream, 10)
    stream.close()
    message = str(caught.value)
    assert "DataLoader worker" not in message and "Traceback" not in message  # raised here, not re-raised
    return message


def test_corrupt_image_names_file_row_and_column(bad_files):
    message = first_error(bad_files["corrupt"], workers=1)
    assert f"file {bad_files['corrupt']}, row {BAD_ROW}" in message
    assert "column 'image'" in message and "cannot be decoded as an image" in message
    assert "data.on_bad_example=skip" in message


def test_label_outside_num_classes(bad_files):
    message = first_error(bad_files["label"], "data.label_column=label", "model.num_classes=10")
    assert f"row {BAD_ROW}" in message and "column 'label'" in message
    assert "label 12 is outside model.num_classes=10; valid: 0..9" in message


def test_image_smaller_than_the_crop(bad_files):
    message = first_error(bad_files["small"], "data.center_crop=true", "data.crop_size=24")
    assert f"row {BAD_ROW}" in message and "column 'image'" in message
    assert "image is 20x20 px, smaller than the 24 px center crop (data.crop_size)" in message


def test_missing_column_fails_at_construction(celeba_dir):
    cfg = cfg_for(
        "data.source=parquet",
        f"data.path={celeba_dir}",
        "data.image_column=img",
        config="configs/celeba_dcgan.yaml",
    )
    with pytest.raises(
        DataError,
        match=r"data.image_column: column 'img' not found in .*available columns: "
        r"image, celeb_id, 5_o_Clock_Shadow",
    ):
        TrainStream(cfg, 0, 1)
    cfg = cfg_for("data.label_column=digit")
    with pytest.raises(DataError, match="data.label_column: column 'digit' not found"):
        TrainStream(cfg, 0, 1)


def test_missing_local_path():
    with pytest.raises(DataError, match="data.path: no parquet files at '/nonexistent/x.parquet'"):
        TrainStream(cfg_for("data.source=parquet", "data.path=/nonexistent/x.parquet"), 0, 1)


def test_skip_mode_skips_and_counts_exactly(bad_files, tmp_path):
    import pyarrow as pa

    # One file of 3 x 21 rows: the three bad rows sit at 7, 28 and 49 in file order, none of them last.
    tables = [pq.read_table(bad_files[name]) for name in ("corrupt", "small")]
    labels = pq.read_table(bad_files["label"]).cast(tables[0].schema)  # 12 is fine as a plain int64
    mixed = tmp_path / "mixed.parquet"
    pq.write_table(pa.concat_tables(tables + [labels]), mixed)
    good = 3 * BAD_GOOD_ROWS
    cfg = cfg_for(
        "data.source=parquet",
        f"data.path={mixed}",
        "data.batch_size=5",
        "data.shuffle_buffer=0",
        "data.on_bad_example=skip",
        "data.center_crop=true",
        "data.crop_size=24",
        "data.label_column=label",
        "model.num_classes=10",
    )
    stream = TrainStream(cfg, 0, 1)
    epoch = take(stream, good // 5)
    assert stream.stats == {"epoch": 0, "skipped_examples": 3}
    assert sum(len(b) for b in epoch) == good
    assert all(int(b.labels.max()) < 10 for b in epoch)
    keys = [k for b in epoch for k in image_keys(b.images)]
    state = stream.state_dict()
    second = take(stream, good // 5)
    assert stream.stats["skipped_examples"] == 6 and stream.state_dict()["epoch"] == 1
    assert sorted(keys) == sorted(k for b in second for k in image_keys(b.images))
    resumed = TrainStream(cfg, 0, 1)
    resumed.load_state_dict(state)
    again = take(resumed, good // 5)
    assert all(x.images.equal(y.images) for x, y in zip(again, second, strict=True))
    assert resumed.stats["skipped_examples"] == 6


def test_hub_unreachable_offline_says_how_to_use_local_files():
    code = (
        "from distgan.config import load_config\n"
        "from distgan.data import TrainStream, DataError\n"
        "try:\n"
        "    TrainStream(load_config('configs/mnist_dcgan.yaml'), 0, 1)\n"
        "except DataError as err:\n"
        "    print('DATAERROR', err)\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert "DATAERROR" in out.stdout, out.stderr[-2000:]
    assert "could not load Hub dataset 'ylecun/mnist'" in out.stdout
    assert "offline mode is on" in out.stdout
    assert "data.source=parquet data.path=" in out.stdout


def test_prepared_data_must_match_the_config(tmp_path):
    from distgan.data.prepare import prepare

    prepare(None, str(tmp_path / "p"), 2, ["data.resolution=32"], limit=64)
    with pytest.raises(DataError, match="data.resolution: the prepared data at .* has resolution=32"):
        TrainStream(cfg_for("data.source=prepared", f"data.path={tmp_path / 'p'}"), 0, 1)
    with pytest.raises(DataError, match="is not a prepared dataset"):
        TrainStream(cfg_for("data.source=prepared", f"data.path={tmp_path}"), 0, 1)


def test_a_process_without_examples_is_told_so(tmp_path):
    few = tmp_path / "few.parquet"
    pq.write_table(pq.read_table(EMBEDDED_PATH).slice(0, 3), few)
    cfg = cfg_for("data.source=parquet", f"data.path={few}", "data.batch_size=4")
    with pytest.raises(DataError, match="process 3 of 4 got no examples .* use fewer processes or more data"):
        next(TrainStream(cfg, 3, 4))


def test_skip_mode_with_no_usable_example_stops(bad_files, tmp_path):
    only_bad = tmp_path / "only_bad.parquet"
    pq.write_table(pq.read_table(bad_files["corrupt"]).slice(BAD_ROW, 1), only_bad)
    cfg = cfg_for(
        "data.source=parquet", f"data.path={only_bad}", "data.batch_size=2", "data.on_bad_example=skip"
    )
    with pytest.raises(DataError, match="a whole epoch of .* had no usable example"):
        next(TrainStream(cfg, 0, 1))
