"""What a user can find out without reading the code: `--help-config` (every key, generated from
the dataclasses and their comments), `--print-config` (the resolved config, commented, loadable),
and the console: a progress bar on a terminal, one plain line per log step otherwise.
"""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import yaml

from distgan.config import ExperimentConfig, config_from_dict, describe, load_config
from distgan.config.describe import field_comments, keys
from distgan.tracking import TrackedRun, Tracker
from distgan.train import main

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = "configs/quickstart.yaml"


def leaf_names(cls=ExperimentConfig, prefix="") -> list[str]:
    out = []
    for f in dataclasses.fields(cls):
        tp = typing.get_type_hints(cls)[f.name]
        out += leaf_names(tp, f"{prefix}{f.name}.") if dataclasses.is_dataclass(tp) else [prefix + f.name]
    return out


def test_help_config_lists_every_key_with_type_default_and_its_source_comment(capsys):
    assert main(["--help-config"]) == 0  # no --config needed
    text = capsys.readouterr().out
    names = leaf_names()
    assert [k.name for k in keys()] == names
    for name in names:
        assert f"  {name}  (" in text, name
    undocumented = [k.name for k in keys() if not k.comment]
    assert undocumented == [], f"fields without a comment in config/sections.py: {undocumented}"
    # a few read straight from sections.py: the comment, the Literal choices, the default
    assert "  train.n_critic  (int; default: 1)\n      D steps per G step (WGAN-GP: 5)\n" in text
    assert (  # a registry's key lists its registered names
        "  model.arch  (one of 'dcgan', 'mlp', 'resnet', 'stylegan2'; default: dcgan)\n"
        "      network family: mlp | dcgan | resnet (SNGAN/BigGAN) | stylegan2, or a registered one\n" in text
    )
    assert (
        "  log.trackers  (a list, each one of 'tensorboard', 'wandb'; default: [wandb])" in text
    )  # registry
    # a comment on the lines above a field (several lines joined) belongs to that field only
    comments = field_comments()
    assert comments[("DataConfig", "path")].startswith("hub: dataset id; parquet: file, glob or directory;")
    assert comments[("DataConfig", "path")].endswith("toy: ring8 | grid25; embedded, stacked_mnist: ignored")
    assert comments[("DataConfig", "name")] == "hub dataset config name (e.g. a CelebA subset), if any"


def test_print_config_is_the_resolved_config_with_comments_and_loads_back(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")  # launcher settings are part of "resolved"
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "1")
    out = tmp_path / "never_created"
    assert main(["--config", QUICKSTART, "train.steps=7", f"train.out_dir={out}", "--print-config"]) == 0
    text = capsys.readouterr().out
    assert "  steps: 7  # generator steps to train for\n" in text
    assert "  backend: deepspeed  # how G and D are wrapped across processes;" in text
    assert "  zero_stage: 1  # DeepSpeed ZeRO stage: 1 or 2;" in text
    printed = config_from_dict(yaml.safe_load(text))
    expected = load_config(
        QUICKSTART,
        [
            "train.steps=7",
            f"train.out_dir={out}",
            "distributed.backend=deepspeed",
            "distributed.zero_stage=1",
        ],
    )
    assert printed == expected
    assert not out.exists()  # nothing trained, nothing written


def test_print_config_of_a_bad_config_is_the_usual_one_line_error(capsys):
    assert main(["--config", QUICKSTART, "train.steps=0", "--print-config"]) == 2
    assert capsys.readouterr().err.strip() == "error: train.steps: must be >= 1, got 0"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


SCALARS = {"loss_d": 0.25, "loss_g": 1.5, "images_per_sec": 1234.0, "eta_sec": 5.0}


def test_console_is_a_progress_bar_on_a_terminal(tmp_path, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    cfg = load_config(QUICKSTART, ["train.steps=4", "log.trackers=[]"])
    tracker = Tracker(cfg.log, TrackedRun(tmp_path, True, cfg.train.steps, resumed_step=1))
    for step in (2, 3):
        tracker.advance(step)
    tracker.log(3, SCALARS)
    tracker.log_summary(3, {"eval/fd_raw": 2.0})
    tracker.advance(4)
    tracker.close()
    shown = terminal.getvalue()
    assert "\r" in shown and "3/4" in shown and "4/4" in shown  # a bar redrawn in place, resumed at 1
    assert "D +0.2500 | G +1.5000 | 1234 img/s]" in shown  # losses and images/s, not cut off in 80 columns
    assert "step 3 | eval/fd_raw 2.0\n" in shown  # other lines still get through
    assert "step 3/4 |" not in shown  # no plain log line on a terminal


def test_progress_bar_shows_on_a_real_pseudo_terminal_without_a_size(tmp_path):
    """`script`, CI runners and `ssh -T` give a pty whose size reads 0 x 0: tqdm would draw nothing."""
    code = (
        "from distgan.config import load_config; from distgan.tracking import TrackedRun, Tracker\n"
        "cfg = load_config('configs/quickstart.yaml', ['train.steps=2', 'log.trackers=[]'])\n"
        f"run = TrackedRun(__import__('pathlib').Path({str(tmp_path)!r}), True, cfg.train.steps)\n"
        "tracker = Tracker(cfg.log, run)\n"
        "tracker.log(2, {'loss_d': 0.25, 'loss_g': 1.5, 'images_per_sec': 99.0}); tracker.close()\n"
    )
    controller, terminal = os.openpty()
    subprocess.run([sys.executable, "-c", code], cwd=REPO, stdout=terminal, check=True, timeout=120)
    os.close(terminal)
    shown = b""
    while chunk := _read(controller):
        shown += chunk
    assert b"train: 100%" in shown and b"D +0.2500 | G +1.5000 | 99 img/s" in shown, shown


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # the pty's other end is closed: everything was read
        return b""


def test_console_is_one_plain_line_per_log_step_otherwise(tmp_path, capsys):
    cfg = load_config(QUICKSTART, ["train.steps=4", "log.trackers=[]"])
    tracker = Tracker(cfg.log, TrackedRun(tmp_path, True, cfg.train.steps))
    for step in (1, 2, 3, 4):
        tracker.advance(step)
        if step % 2 == 0:
            tracker.log(step, SCALARS)
    tracker.close()
    assert capsys.readouterr().out.splitlines() == [
        "step 2/4 | loss_d +0.2500 | loss_g +1.5000 | 1234 img/s | eta 0:00:05",
        "step 4/4 | loss_d +0.2500 | loss_g +1.5000 | 1234 img/s | eta 0:00:05",
    ]


@pytest.mark.parametrize(
    "value, written", [(None, "null"), ([], "[]"), (["a", "b"], "[a, b]"), ("", "''"), (1e-4, "0.0001")]
)
def test_values_are_written_as_yaml_reads_them(value, written):
    assert describe._yaml_value(value) == written
    assert yaml.safe_load(written) == value
