"""The reference cache's key changes with every setting that changes the real images or their
features, so a stale entry is never reused; the same settings give the same key."""

from __future__ import annotations

import pytest

from distgan.config import load_config
from distgan.metrics.reference_cache import reference_key

BASE = ["data.source=parquet", "data.path=digits.parquet", "data.resolution=32"]
ARGS = {"extractor": "mnist_classifier", "labeler": None, "count": 1000, "seed": 7, "resize": "legacy"}


def key(overrides=(), **changed):
    return reference_key(load_config(None, [*BASE, *overrides]), **{**ARGS, **changed})


@pytest.mark.parametrize(
    "overrides",
    [
        ["data.path=other.parquet"],
        ["data.name=subset"],
        ["data.image_column=img"],
        ["data.split=test"],
        ["data.resolution=64"],
        ["model.channels=3"],
        ["data.center_crop=true"],
        ["data.center_crop=true", "data.crop_size=20"],
    ],
)
def test_every_data_setting_that_changes_the_images_changes_the_key(overrides):
    assert key(overrides) != key()


@pytest.mark.parametrize(
    "changed", [{"extractor": "raw"}, {"count": 2000}, {"count": None}, {"seed": 8}, {"resize": "clean"}]
)
def test_every_evaluation_setting_changes_the_key(changed):
    assert key(**changed) != key()


def test_the_same_settings_give_the_same_key():
    assert key() == key()


@pytest.mark.parametrize("source", ["parquet", "zip", "imagefolder"])
def test_a_relative_local_path_is_keyed_by_where_it_points(source, tmp_path, monkeypatch):
    overrides = [f"data.source={source}", "data.path=data.bin"]
    monkeypatch.chdir(tmp_path)
    here = key(overrides)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert key(overrides) != here  # the same relative name, other files
