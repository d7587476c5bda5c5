"""NaN on purpose (a one-step learning-rate spike through a test hook): the run rolls back to the
last good checkpoint with smaller learning rates and ends finite; no NaN checkpoint is ever
written; the good checkpoints are kept (issue 11, section 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from distgan.checkpoint import verify
from tests.launching import accelerate_launch, cpu_env
from tests.reliability.reliability_cli import TOY, assert_steps_unique_and_increasing, env

WORKER = str(Path(__file__).with_name("spike_worker.py"))
REPO = Path(__file__).resolve().parents[2]
RUN = ["train.steps=8", "checkpoint.every=2", "checkpoint.keep_last=2", "log.every=1"]


def spiked(out: Path, spike_at: int | str, *extra: str, processes: int = 1) -> subprocess.CompletedProcess:
    args = [WORKER, str(spike_at), *TOY, f"train.out_dir={out}", *RUN, *extra]
    command = [sys.executable, *args] if processes == 1 else accelerate_launch(processes, *args)
    environment = env() if processes == 1 else cpu_env()
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO, env=environment)


def every_checkpoint_is_finite(out: Path) -> list[str]:
    names = []
    for checkpoint in sorted((out / "checkpoints").glob("step_*")):
        verify(checkpoint)
        for weights in checkpoint.glob("*.safetensors"):
            assert all(torch.isfinite(t).all() for t in load_file(weights).values()), weights
        names.append(checkpoint.name)
    return names


@pytest.mark.parametrize("processes", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_a_nan_rolls_back_and_the_run_ends_finite(tmp_path, processes):
    out = tmp_path / "run"
    result = spiked(out, 5, processes=processes)  # D step 5 = iteration 5: after the step-4 checkpoint
    assert result.returncode == 0, result.stdout + result.stderr
    # D's weights turn inf in D step 5; the G step right after it gives a NaN loss, seen at that
    # step's log line: detected at step 5, rolled back to the step-4 checkpoint.
    assert (
        "non-finite values at step 5: rolled back to step 4 (rollback 1), learning rates x0.5"
        in result.stdout
    )
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    expected = {"step": 4, "event": "rollback", "detected_at": 5, "rollbacks": 1, "lr_scale": 0.5}
    assert events == [{**events[0], **expected}]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 9))  # the NaN step was cut from the history
    assert all(all(v == v for v in r.values() if isinstance(v, float)) for r in records)  # no NaN logged
    assert records[-1]["lr_d"] == pytest.approx(0.5 * records[0]["lr_d"])
    assert every_checkpoint_is_finite(out) == ["step_0000006", "step_0000008"]
    meta = json.loads((out / "checkpoints" / "step_0000008" / "meta.json").read_text())
    assert (meta["rollbacks"], meta["lr_scale"]) == (1, 0.5)  # a later resume keeps the smaller lr
    assert_steps_unique_and_increasing(out)


def test_on_nonfinite_stop_exits_3_and_keeps_the_good_checkpoints(tmp_path):
    out = tmp_path / "run"
    result = spiked(out, 5, "train.on_nonfinite=stop")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "non-finite loss or weights" in result.stdout and "train.on_nonfinite=stop" in result.stdout
    assert every_checkpoint_is_finite(out) == ["step_0000002", "step_0000004"]
    assert (out / "checkpoints" / "latest").read_text().strip() == "step_0000004"


def test_giving_up_after_max_rollbacks_exits_3(tmp_path):
    out = tmp_path / "run"
    result = spiked(out, 5, "train.max_rollbacks=0")
    assert result.returncode == 3 and "train.max_rollbacks=0" in result.stdout, result.stdout + result.stderr
    assert every_checkpoint_is_finite(out) == ["step_0000002", "step_0000004"]


def test_a_nan_before_the_first_checkpoint_says_there_is_nothing_to_roll_back_to(tmp_path):
    out = tmp_path / "run"
    result = spiked(out, 1)
    assert result.returncode == 3 and "before the first checkpoint" in result.stdout, (
        result.stdout + result.stderr
    )
    assert every_checkpoint_is_finite(out) == []


def test_a_preemption_while_the_state_is_not_finite_writes_no_checkpoint(tmp_path):
    out = tmp_path / "run"
    result = spiked(out, "5+term", "log.every=100")  # step 5: no log or checkpoint step to look first
    assert result.returncode == 75, result.stdout + result.stderr
    assert "not checkpointing non-finite values" in result.stdout
    assert every_checkpoint_is_finite(out) == ["step_0000002", "step_0000004"]
    assert (out / "checkpoints" / "latest").read_text().strip() == "step_0000004"
