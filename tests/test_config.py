"""Config: every bad input is a clear error naming the key and what is valid."""

import subprocess
import sys

import pytest
import yaml

from distgan.config import ConfigError, ExperimentConfig, config_from_dict, load_config


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.stepz=10"], "unknown key train.stepz; valid keys in train: "),
        (["nosuchsection.x=1"], "unknown key nosuchsection; valid keys: "),
        (["optim.d.lr=-1e-4"], "optim.d.lr: must be in (0, 1]"),
        (["optim.g.lr=fast"], "optim.g.lr: must be a number, got 'fast'"),
        (["train.n_critic=0"], "train.n_critic: must be in [1, 1000], got 0"),
        (["train.steps=ten"], "train.steps: must be an integer, got 'ten'"),
        (["train.steps=1.5"], "train.steps: must be an integer, got 1.5"),
        (["train.compile=maybe"], "train.compile: must be true or false, got 'maybe'"),
        (
            ["objective.loss=wgan"],
            "objective.loss: unknown value 'wgan'; valid: nonsaturating, wasserstein, hinge",
        ),
        (["data.resolution=48"], "data.resolution: model.arch=dcgan can make [28, 32, 64] px images, got 48"),
        (["model.channels=2"], "model.channels: must be 1 or 3, got 2"),
        (
            ["objective.loss=wgan-gp", "model.d_norm=batch"],
            "model.d_norm: objective.penalty=gp needs a critic",
        ),
        (["data.source=toy", "data.path=ring7", "model.arch=mlp"], "data.path: toy dataset must be one of"),
        (
            ["data.source=toy", "data.path=ring8"],
            "model.arch: toy 2D data (sample shape (2,)) needs a family that makes points, e.g. model.arch=mlp",
        ),
        (["data.source=parquet"], "data.path: is required when data.source is 'parquet'"),
        (["train.ema_decay=1.0"], "train.ema_decay: must be in [0, 1), got 1.0"),
        (["objective.real_label=0.3"], "objective.real_label: must be in (0.5, 1], got 0.3"),
        (["train"], "override 'train': expected KEY=VALUE"),
    ],
)
def test_bad_value_names_the_key(overrides, message):
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    assert message in str(info.value)


def test_batch_not_divisible_by_processes():
    with pytest.raises(ConfigError, match=r"data.batch_size: the global batch 30 must be divisible .* \(4\)"):
        load_config(None, ["data.batch_size=30"], world_size=4)
    assert load_config(None, ["data.batch_size=32"], world_size=4).data.batch_size == 32


def test_yaml_file_overrides_and_round_trip(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"train": {"steps": 7}, "optim": {"d": {"lr": "1e-4"}}}))
    cfg = load_config(path, ["train.steps=9", "log.wandb.tags=[a, b]"])
    assert (cfg.train.steps, cfg.optim.d.lr, cfg.log.wandb.tags) == (9, 1e-4, ["a", "b"])
    cfg.save_yaml(tmp_path / "resolved.yaml")
    again = config_from_dict(yaml.safe_load((tmp_path / "resolved.yaml").read_text()))
    assert again == cfg and again.hash() == cfg.hash()
    assert isinstance(again, ExperimentConfig)


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="--config: file not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="must hold a mapping of sections"):
        load_config(bad)


@pytest.mark.parametrize(
    "config",
    [
        "quickstart",
        "toy_ring",
        "toy_grid",
        "mnist_dcgan",
        "mnist_wgan",
        "mnist_cgan",
        "mnist_best",
        "celeba_dcgan",
        "celeba_wgan",
        "celeba_resnet",
        "celeba_resnet_128",
    ],
)
def test_shipped_configs_are_valid(config):
    path = f"configs/{config}.yaml"
    cfg = load_config(path).to_dict()
    raw = yaml.safe_load(open(path).read())
    assert raw, path

    def check(raw_section, loaded, where):  # every key the file sets arrives in the config as written
        for key, value in raw_section.items():
            if isinstance(value, dict):
                check(value, loaded[key], f"{where}{key}.")
            elif isinstance(value, str) and isinstance(loaded[key], float):
                assert loaded[key] == float(value), f"{where}{key}"
            else:
                assert loaded[key] == value, f"{where}{key}"

    check(raw, cfg, "")


def test_cli_rejects_bad_input_before_compute(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "distgan.train",
            "--config",
            "configs/quickstart.yaml",
            "optim.d.lr=-1",
            f"train.out_dir={out}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "error: optim.d.lr: must be in (0, 1]" in result.stderr
    assert not out.exists()  # nothing was started


def test_a_config_is_frozen_and_override_makes_a_new_validated_one():
    import dataclasses

    from distgan.config import override

    cfg = load_config("configs/quickstart.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.steps = 5
    changed = override(cfg, ["train.steps=5", "optim.d.lr=1e-3"])
    assert (changed.train.steps, changed.optim.d.lr) == (5, 1e-3)
    assert (cfg.train.steps, cfg.optim.d.lr) == (3000, 5e-4)  # the original is untouched
    with pytest.raises(ConfigError, match="train.steps: must be >= 1, got 0"):
        override(cfg, ["train.steps=0"])  # derived configs are validated like loaded ones


def test_derived_values_have_one_rule():
    cfg = load_config("configs/quickstart.yaml")
    assert cfg.sample_shape == (1, 28, 28) and cfg.local_batch(2) == cfg.data.batch_size // 2
    toy = load_config("configs/toy_ring.yaml")
    assert toy.sample_shape == (2,)
    with pytest.raises(ConfigError, match=r"data.batch_size: the global batch 64 must be divisible .* \(3\)"):
        cfg.local_batch(3)


def test_a_bare_no_means_the_choice_no_not_false(tmp_path):
    # YAML 1.1 reads `no` as false; `train.mixed_precision=no` is what users type.
    assert load_config(None, ["train.mixed_precision=no"]).train.mixed_precision == "no"
    path = tmp_path / "exp.yaml"
    path.write_text("train:\n  mixed_precision: no\n")
    assert load_config(path, []).train.mixed_precision == "no"
    with pytest.raises(ConfigError, match="train.mixed_precision: must be"):
        load_config(None, ["train.mixed_precision=true"])  # a true is still nothing valid


# ---------------------------------------------------------------- values that come from the registries

REGISTERED_KEYS = ["model.arch", "objective.loss", "objective.penalty", "data.source"]


@pytest.mark.parametrize("key", REGISTERED_KEYS)
def test_allowed_values_are_the_registries_names(key):
    """The config refuses what the registry lacks, lists exactly its names, and `--help-config` says so."""
    from distgan.config.describe import help_text
    from distgan.registry import EXTENSION_POINTS

    table = EXTENSION_POINTS[key]
    names = table.names()
    with pytest.raises(ConfigError) as err:
        load_config(None, [f"{key}=nosuchname"])
    assert str(err.value) == f"{key}: unknown value 'nosuchname'; valid: {', '.join(names)}"
    listed = "one of " + ", ".join(repr(name) for name in names) + ";"
    assert f"  {key}  ({listed}" in help_text()
    table.register("nosuchname", table.get(names[-1]))  # a registered name is accepted and listed at once
    try:
        assert "'nosuchname'" in help_text().split(f"  {key}  (")[1].split("\n")[0]
        with pytest.raises(ConfigError) as err:
            load_config(None, [f"{key}=nosuchname2"])
        assert str(err.value).endswith(", nosuchname")
    finally:
        table.unregister("nosuchname")


def test_builtin_names_are_registered():
    from distgan.registry import ARCHITECTURES, LOSSES, PENALTIES, SOURCES

    assert set(ARCHITECTURES.names()) >= {"mlp", "dcgan", "resnet"}
    assert set(LOSSES.names()) >= {"nonsaturating", "wasserstein", "hinge"}
    assert set(PENALTIES.names()) >= {"none", "gp", "r1"}
    assert set(SOURCES.names()) >= {"embedded", "hub", "parquet", "imagefolder", "toy", "prepared"}


def test_wgan_gp_still_means_wasserstein_with_the_gradient_penalty():
    old = load_config(None, ["objective.loss=wgan-gp", "objective.gp_weight=5"]).objective
    assert (old.loss, old.penalty, old.gp_weight) == ("wasserstein", "gp", 5.0)
    assert load_config(None, ["objective.loss=wgan-gp", "objective.penalty=gp"]).objective == old.__class__(
        loss="wasserstein", penalty="gp", gp_weight=10.0
    )
    with pytest.raises(ConfigError, match="^objective.loss: wgan-gp means loss wasserstein with penalty gp"):
        load_config(None, ["objective.loss=wgan-gp", "objective.penalty=r1", "objective.r1_weight=1"])


def test_a_run_saved_with_wgan_gp_resumes_without_a_config_change():
    from distgan.config.diff import config_changes

    now = load_config("configs/mnist_wgan.yaml").to_dict()
    saved = yaml.safe_load(yaml.safe_dump(now))
    saved["objective"]["loss"] = "wgan-gp"  # how older runs wrote it: no penalty key
    del saved["objective"]["penalty"]
    assert config_changes(saved, now) == []
    saved["objective"]["gp_weight"] = 1.0
    assert config_changes(saved, now) == [("objective.gp_weight", 1.0, 10.0)]


@pytest.mark.parametrize(
    "overrides, penalties",
    [
        ([], ()),
        (["objective.loss=wgan-gp"], ("gp",)),
        (["objective.loss=wgan-gp", "objective.gp_weight=0"], ()),  # weight 0: off, as it always was
        (["objective.loss=wgan-gp", "objective.r1_weight=2"], ("gp", "r1")),  # R1 joins any penalty
        (["objective.r1_weight=0.5"], ("r1",)),  # older configs: r1_weight > 0 alone turns R1 on
        (["objective.penalty=r1", "objective.r1_weight=0.5"], ("r1",)),
        (["objective.loss=hinge", "objective.penalty=gp"], ("gp",)),
    ],
)
def test_penalties_are_decided_in_one_place(overrides, penalties):
    objective = load_config(None, overrides).objective
    assert objective.penalties == penalties and objective.has_penalty == bool(penalties)


def test_penalty_r1_without_a_weight_is_refused():
    with pytest.raises(ConfigError, match="^objective.r1_weight: objective.penalty=r1 weighs R1"):
        load_config(None, ["objective.penalty=r1"])


def test_gp_with_batchnorm_in_d_is_refused_whatever_the_loss():
    with pytest.raises(
        ConfigError, match="^model.d_norm: objective.penalty=gp needs a critic without BatchNorm"
    ):
        load_config(None, ["objective.loss=hinge", "objective.penalty=gp", "model.d_norm=batch"])


def test_config_reaches_the_concerns_through_the_registries_only():
    """config/ names no model, objective or data module: the registries import them by name."""
    from tests.test_architecture import import_graph, reachable

    reached = reachable(import_graph(), "distgan.config")
    assert "distgan.registry" in reached
    assert not [m for m in reached if m.split(".")[1] in ("models", "objectives", "data")], reached
