"""Every entry point turns a UserError into ONE line on stderr and exit 2 (never a traceback).

The bad input is the one a user meets after an upgrade or a hand edit: a checkpoint whose
config.yaml no longer validates. sample and evaluate read it through --checkpoint; train,
data.prepare and bench read the same file through --config.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from distgan.checkpoint.locate import write_manifest

BAD_ARCH = "stylegan9"


@pytest.fixture(scope="module")
def broken_checkpoint(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    subprocess.run(
        [sys.executable, "-m", "distgan.train", "--config", "configs/toy_ring.yaml", "train.steps=1",
         "log.every=1", f"train.out_dir={run}"],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    checkpoint = run / "checkpoints" / "step_0000001"
    config = yaml.safe_load((checkpoint / "config.yaml").read_text())
    config["model"]["arch"] = BAD_ARCH
    (checkpoint / "config.yaml").write_text(yaml.safe_dump(config))
    write_manifest(checkpoint)  # an intact checkpoint whose config an older/newer distgan wrote
    return checkpoint


def entry_commands(checkpoint, out):
    config = str(checkpoint / "config.yaml")
    return {
        "train": ["distgan.train", "--config", config, f"train.out_dir={out / 'train'}"],
        "sample": [
            "distgan.sample",
            "--checkpoint",
            str(checkpoint),
            "--num",
            "4",
            "--out",
            str(out / "s.npz"),
        ],
        "evaluate": ["distgan.evaluate", "--checkpoint", str(checkpoint), "--num", "10"],
        "data.prepare": [
            "distgan.data.prepare",
            "--config",
            config,
            "--out",
            str(out / "prep"),
            "--num-shards",
            "1",
        ],
        "bench": ["distgan.bench", "--config", config, "--tiny"],
    }


@pytest.mark.parametrize("entry", ["train", "sample", "evaluate", "data.prepare", "bench"])
def test_an_invalid_checkpoint_config_is_one_line_and_exit_2(entry, broken_checkpoint, tmp_path):
    command = entry_commands(broken_checkpoint, tmp_path)[entry]
    result = subprocess.run(
        [sys.executable, "-m", *command],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "model.arch: unknown value" in lines[0]
    assert BAD_ARCH in lines[0]
