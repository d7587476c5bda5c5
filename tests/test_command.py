"""The `distgan` command: one name for every tool, each subcommand the module's own main()."""

import sys
from pathlib import Path

import pytest

from distgan.cli import COMMANDS, main

REPO = Path(__file__).resolve().parents[1]


def test_the_console_scripts_are_declared():
    scripts = (REPO / "pyproject.toml").read_text().split("[project.scripts]\n")[1].split("\n\n")[0]
    assert scripts.splitlines() == ['distgan = "distgan.cli:main"', 'distgan-train = "distgan.train:main"']


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("train", "sample", "evaluate", "export", "prepare", "bench"):
        assert f"\n  {name} " in out, name


MODULES = {
    "train": "distgan.train",
    "sample": "distgan.sample",
    "evaluate": "distgan.evaluate",
    "export": "distgan.export",
    "prepare": "distgan.data.prepare",
    "bench": "distgan.bench",
}


def test_every_command_is_listed():
    assert list(COMMANDS) == list(MODULES)


@pytest.mark.parametrize("command", list(MODULES))
def test_each_command_answers_help_with_its_own_options(command, capsys):
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: python -m {MODULES[command]} ")


def test_arguments_reach_the_command_unchanged(capsys):
    assert main(["train", "--config", "configs/quickstart.yaml", "train.steps=0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train.steps" in err[0], err


def test_no_command_or_an_unknown_one_is_exit_2(capsys):
    assert main([]) == 2
    assert "usage: distgan COMMAND" in capsys.readouterr().err
    assert main(["trian"]) == 2
    assert capsys.readouterr().err.strip() == (
        "distgan: unknown command 'trian'; valid: train, sample, evaluate, export, prepare, bench"
    )


def test_version(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["distgan", "--version"])
    assert main() == 0
    assert capsys.readouterr().out.startswith("distgan 0.")
