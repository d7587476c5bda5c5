"""Adding an architecture, a loss, a penalty or a data source is one file: each file under
tests/extensions/ registers one entry, and `train` runs 2 steps with its name in the config."""

from __future__ import annotations

import importlib
import json
import sys

import pytest

from distgan.config import ConfigError, load_config
from distgan.registry import ARCHITECTURES, LOSSES, PENALTIES, SOURCES
from distgan.trainer import train
from tests.conftest import TINY

# Toy points and the tiny mlp: the cheapest run that goes through every phase.
TOY = ["data.source=toy", "data.path=ring8", "data.toy_samples=64", "model.arch=mlp", "model.latent_dim=2"]
RUN = [*TINY, "train.steps=2", "checkpoint.every=0", "data.shuffle_buffer=0"]


@pytest.fixture
def extension(request):
    """Import tests/extensions/<name>.py (it registers its entry); afterwards unregister the entry."""
    registry, module_name = request.param
    module = importlib.import_module(f"tests.extensions.{module_name}")
    yield module
    registry.unregister(module.NAME)
    sys.modules.pop(module.__name__, None)  # the next import registers again
    assert module.NAME not in registry


def train_two_steps(tmp_path, *overrides) -> list[dict]:
    cfg = load_config(None, [*RUN, f"train.out_dir={tmp_path / 'run'}", *overrides])
    assert train(cfg) == 0
    return [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("extension", [(ARCHITECTURES, "custom_architecture")], indirect=True)
def test_a_registered_architecture_trains(extension, tmp_path, fresh_accelerate):
    rows = train_two_steps(tmp_path, *TOY, f"model.arch={extension.NAME}")
    assert [row["step"] for row in rows] == [1, 2]
    assert extension.CALLS["generator"] >= 2 and extension.CALLS["discriminator"] >= 2


@pytest.mark.parametrize("extension", [(LOSSES, "custom_loss")], indirect=True)
def test_a_registered_loss_trains(extension, tmp_path, fresh_accelerate):
    train_two_steps(tmp_path, *TOY, f"objective.loss={extension.NAME}")
    assert extension.CALLS == {"discriminator": 2, "generator": 2}  # one D and one G step per G step


@pytest.mark.parametrize("extension", [(PENALTIES, "custom_penalty")], indirect=True)
def test_a_registered_penalty_trains_and_logs_its_values(extension, tmp_path, fresh_accelerate):
    rows = train_two_steps(tmp_path, *TOY, f"objective.penalty={extension.NAME}", "objective.r1_weight=0")
    assert extension.CALLS["term"] == 2
    assert all(row["drift"] > 0 for row in rows)  # the penalty's own named value reached the logs


@pytest.mark.parametrize("extension", [(SOURCES, "custom_source")], indirect=True)
def test_a_registered_data_source_trains(extension, tmp_path, fresh_accelerate):
    rows = train_two_steps(tmp_path, f"data.source={extension.NAME}", "model.num_classes=0")
    assert extension.CALLS["open"] >= 1 and [row["step"] for row in rows] == [1, 2]


@pytest.mark.parametrize("extension", [(ARCHITECTURES, "custom_architecture")], indirect=True)
def test_an_unregistered_name_is_refused_naming_the_key(extension):
    overrides = [*TOY, f"model.arch={extension.NAME}"]
    assert load_config(None, overrides).model.arch == extension.NAME
    ARCHITECTURES.unregister(extension.NAME)
    with pytest.raises(ConfigError, match=f"^model.arch: unknown value '{extension.NAME}'; valid: "):
        load_config(None, overrides)
