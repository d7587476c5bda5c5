"""TensorBoard through accelerate's tracker API (log.trackers: [tensorboard]), read back with
TensorBoard's own event reader: scalars and sample grids at the logged steps, every step once after
a resume from an older checkpoint and after a rollback (purge_step), nothing when not asked for.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from distgan.config import ConfigError, load_config
from distgan.registry import TRACKERS
from distgan.tracking import TrackedRun, Tracker, TrackingError, log_with, logging_dir, start_fresh_history
from tests.launching import REPO, TINY_OVERRIDES, cpu_env

PROJECT = "distgan"  # log.wandb.project: the TensorBoard run's directory name


def events(run_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    reader = EventAccumulator(str(logging_dir(run_dir) / PROJECT), size_guidance={"scalars": 0, "images": 0})
    reader.Reload()
    return reader


def scalar_steps(reader, tag: str) -> list[int]:
    return [e.step for e in reader.Scalars(tag)]


def train(run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable, "-m", "distgan.train", "--config", "configs/quickstart.yaml", *TINY_OVERRIDES,
        "log.sample_every=2", "log.trackers=[tensorboard]", "checkpoint.every=2", f"train.out_dir={run_dir}", *extra,
    ]  # fmt: skip
    result = subprocess.run(cmd, cwd=REPO, env=cpu_env(), capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def jsonl(run_dir: Path) -> dict[int, dict]:
    return {r["step"]: r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_scalars_and_samples_at_logged_steps_and_once_after_resume(tmp_path):
    run_dir = tmp_path / "run"
    train(run_dir, "train.steps=4")
    reader = events(run_dir)
    assert scalar_steps(reader, "loss_d") == [1, 2, 3, 4]
    for step, record in jsonl(run_dir).items():  # the same numbers as metrics.jsonl
        for key in ("loss_d", "loss_g", "images_per_sec", "images_seen", "lr_d"):
            (value,) = [e.value for e in reader.Scalars(key) if e.step == step]
            assert value == pytest.approx(record[key], rel=1e-6), (key, step)
    images = reader.Images("samples")
    assert [e.step for e in images] == [2, 4]
    shown = np.asarray(Image.open(io.BytesIO(images[0].encoded_image_string)).convert("RGB"))
    saved = np.asarray(Image.open(run_dir / "samples" / "step_0000002.png").convert("RGB"))
    assert np.array_equal(shown, saved)  # the grid itself, not a re-rendering

    # Resume from the step-2 checkpoint: steps 3 and 4 are logged again and must not appear twice.
    train(run_dir, "train.steps=5", "--resume", str(run_dir / "checkpoints" / "step_0000002"))
    reader = events(run_dir)
    assert scalar_steps(reader, "loss_d") == [1, 2, 3, 4, 5]
    assert scalar_steps(reader, "loss_g") == [1, 2, 3, 4, 5]
    assert [e.step for e in reader.Images("samples")] == [2, 4, 5]
    assert len(list((logging_dir(run_dir) / PROJECT).glob("events.out.tfevents.*"))) == 2


def test_rollback_hides_the_abandoned_steps(tmp_path, fresh_accelerate):
    from accelerate import Accelerator

    cfg = load_config("configs/quickstart.yaml", ["log.trackers=[tensorboard]"])
    accelerator = Accelerator(cpu=True, log_with=log_with(cfg.log), project_dir=str(logging_dir(tmp_path)))
    run = TrackedRun(tmp_path, is_main_process=True, total_steps=cfg.train.steps)
    tracker = Tracker(cfg.log, run, accelerator)
    for step in (1, 2, 3, 4):
        tracker.log(step, {"loss_d": float(step)})
    tracker.rollback(2, detected_at=4, rollbacks=1, lr_scale=0.5)
    for step in (3, 4, 5):
        tracker.log(step, {"loss_d": 10.0 + step})
    tracker.log_summary(5, {"eval/fd_raw": 1.5, "eval/extractor": "raw"})
    tracker.close()
    assert accelerator.trackers == []  # end_training has nothing left to finish twice
    reader = events(tmp_path)
    assert [(e.step, e.value) for e in reader.Scalars("loss_d")] == [
        (1, 1),
        (2, 2),
        (3, 13),
        (4, 14),
        (5, 15),
    ]
    assert [(e.step, e.value) for e in reader.Scalars("eval/fd_raw")] == [(5, 1.5)]

    # A fresh run in the same directory (no checkpoint to resume) starts a fresh TensorBoard history.
    start_fresh_history(tmp_path)
    Tracker(cfg.log, run, accelerator).close()
    assert events(tmp_path).Tags()["scalars"] == []


def test_trackers_are_checked_before_any_compute(monkeypatch):
    valid = re.escape(str(list(TRACKERS.names())))
    with pytest.raises(ConfigError, match=rf"log.trackers\[1\]: must be one of {valid}"):
        load_config(None, ["log.trackers=[tensorboard,mlflow]"])
    with pytest.raises(ConfigError, match=r"log.trackers\[1\]: .* each at most once"):
        load_config(None, ["log.trackers=[tensorboard,tensorboard]"])
    with pytest.raises(
        ConfigError, match=r"log.wandb.mode: is 'offline' but log.trackers \['tensorboard'\] has no wandb"
    ):
        load_config(None, ["log.trackers=[tensorboard]", "log.wandb.mode=offline"])

    def accelerate_names(*overrides: str) -> list[str]:
        return log_with(load_config(None, list(overrides)).log)

    assert accelerate_names("log.trackers=[wandb,tensorboard]") == ["tensorboard"]  # wandb disabled
    assert accelerate_names("log.trackers=[wandb]", "log.wandb.mode=offline") == ["wandb"]
    assert accelerate_names("log.trackers=[]") == []
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # the package is not installed
    with pytest.raises(TrackingError, match=r"pip install 'distgan\[tensorboard\]'"):
        accelerate_names("log.trackers=[tensorboard]")
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(
        TrackingError, match=r"log.trackers: wandb needs the wandb package: pip install 'distgan\[wandb\]'"
    ):
        accelerate_names("log.trackers=[wandb]", "log.wandb.mode=offline")
    assert accelerate_names("log.trackers=[wandb]") == []  # disabled: wandb is not needed at all
