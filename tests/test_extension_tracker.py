"""A tracker registered from one file (tests/extensions/custom_tracker.py) is a valid `log.trackers`
name, is listed by --help-config, and receives a real training run's scalars, pictures and close."""

from __future__ import annotations

import importlib
import json

import pytest

from distgan.config import ConfigError, load_config
from distgan.config.describe import help_text
from distgan.registry import TRACKERS
from distgan.trainer import train

TOY = ["model.g_width=8", "model.d_width=8", "data.batch_size=16", "data.toy_samples=64", "log.every=1"]
TOY += ["log.num_samples=16", "model.latent_components=4"]


@pytest.fixture
def custom_tracker():
    """The user's one file, imported here and not at collection: its entry must not be registered
    while other modules' tests (the generated config reference, --help-config) run."""
    return importlib.import_module("tests.extensions.custom_tracker")


@pytest.fixture
def in_memory_tracker(custom_tracker):
    TRACKERS.register(custom_tracker.NAME, custom_tracker.InMemorySink)  # again after an earlier teardown
    custom_tracker.InMemorySink.built.clear()
    yield custom_tracker.InMemorySink
    TRACKERS.unregister(custom_tracker.NAME)
    custom_tracker.InMemorySink.built.clear()


def test_the_config_allows_exactly_the_registered_trackers(in_memory_tracker, custom_tracker):
    for name in TRACKERS.names():
        assert load_config(None, [f"log.trackers=[{name}]"]).log.trackers == [name]
    (line,) = [line for line in help_text().splitlines() if line.startswith("  log.trackers  ")]
    assert line.startswith("  log.trackers  (a list, each one of ")
    assert sorted(line.split("one of ")[1].split(";")[0].replace("'", "").split(", ")) == sorted(
        TRACKERS.names()
    )
    TRACKERS.unregister(custom_tracker.NAME)
    with pytest.raises(ConfigError, match=r"log.trackers\[0\]: must be one of .*got 'in_memory'"):
        load_config(None, ["log.trackers=[in_memory]"])
    assert custom_tracker.NAME not in help_text()


def test_a_registered_tracker_receives_the_step_scalars_and_the_close(
    tmp_path, fresh_accelerate, in_memory_tracker, custom_tracker
):
    cfg = load_config(
        "configs/toy_ring.yaml",
        [
            *TOY,
            "train.steps=2",
            "checkpoint.every=0",
            "log.trackers=[in_memory]",
            f"train.out_dir={tmp_path}",
        ],
    )
    assert train(cfg, resume="never") == 0
    (sink,) = in_memory_tracker.built
    assert sink.closed and sink.run.run_dir == tmp_path and sink.log_config == cfg.log
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert sorted(sink.scalars) == [line["step"] for line in lines] == [1, 2]
    for line in lines:  # the same numbers as metrics.jsonl, less its step and clock
        expected = {k: v for k, v in line.items() if k not in ("step", "wall_time")}
        assert sink.scalars[line["step"]] == expected
        assert {"loss_d", "loss_g", "images_seen", "lr_d", "lr_g"} <= set(expected)
    assert [(step, key) for step, key, _ in sink.pictures] == [(2, "samples")]
    assert sink.pictures[0][2].is_file()
