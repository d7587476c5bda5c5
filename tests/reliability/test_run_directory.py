"""Nothing silently wiped, pruned or mixed: every case runs the real CLI on a real run directory and
checks the exit code, the one-line message, and that no file was lost (issue 11, section 3)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
from pathlib import Path

import pytest

from distgan.checkpoint import LOCK_FILE, verify
from tests.reliability.reliability_cli import (
    assert_steps_unique_and_increasing,
    error_line,
    metric_steps,
    snapshot,
    start_train,
    train,
    wait_for_output,
)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("template") / "run"
    result = train(out, "train.steps=4", "checkpoint.every=2", "checkpoint.keep_last=5")
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture
def run(finished_run, tmp_path) -> Path:
    """A private copy of a finished 4-step run with checkpoints at steps 2 and 4."""
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    return out


def checkpoints(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "checkpoints").glob("step_*"))


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param(lambda p: p.unlink(), id="deleted"),
        pytest.param(lambda p: (p.unlink(), p.mkdir()), id="a-directory"),
        pytest.param(lambda p: p.write_bytes(b"\x00\xff\xfe binary garbage \x80"), id="binary-garbage"),
        pytest.param(lambda p: p.write_text(""), id="empty"),
        pytest.param(lambda p: p.write_text("step_0000099\n"), id="names-nothing"),
    ],
)
def test_a_broken_latest_with_checkpoints_present_lists_them_and_changes_nothing(run, breakage):
    breakage(run / "checkpoints" / "latest")
    before = snapshot(run)
    line = error_line(train(run, "train.steps=6"))
    assert "step_0000002, step_0000004" in line and f"--resume {run}/checkpoints/step_0000004" in line
    assert snapshot(run) == before  # nothing restarted, wiped or overwritten


def test_resume_never_on_a_run_with_checkpoints_needs_overwrite_and_then_moves_it_aside(run):
    before = snapshot(run)
    line = error_line(train(run, "--resume", "never", "train.steps=2"))
    assert "already holds checkpoints (step_0000002, step_0000004)" in line and "--overwrite" in line
    assert snapshot(run) == before
    result = train(run, "--resume", "never", "--overwrite", "train.steps=2")
    assert result.returncode == 0, result.stderr
    (previous,) = run.glob("previous-*")
    moved = snapshot(previous)
    assert all(moved[name] == size for name, size in before.items() if name != LOCK_FILE), (
        "old run incomplete"
    )
    assert checkpoints(run) == ["step_0000002"] and metric_steps(run) == [1, 2]


def test_resuming_from_an_older_checkpoint_moves_the_newer_ones_aside_and_keeps_what_it_writes(run):
    result = train(run, "--resume", str(run / "checkpoints" / "step_0000002"), "train.steps=3",
                   "checkpoint.every=1", "checkpoint.keep_last=1")  # fmt: skip
    assert result.returncode == 0, result.stderr
    (abandoned,) = (run / "checkpoints").glob("abandoned-*")
    assert sorted(p.name for p in abandoned.iterdir()) == ["step_0000004"]
    verify(abandoned / "step_0000004")  # moved whole, still a valid checkpoint
    assert checkpoints(run) == ["step_0000003"]  # keep_last=1 counts this lineage only
    assert (run / "checkpoints" / "latest").read_text().strip() == "step_0000003"
    assert_steps_unique_and_increasing(run)


def test_a_changed_config_is_refused_with_the_diff_unless_allowed(run):
    before = snapshot(run)
    line = error_line(train(run, "train.steps=6", "model.g_width=32", "train.seed=3"))
    assert (
        "model.g_width: 16 -> 32" in line and "train.seed: 0 -> 3" in line and "--allow-config-change" in line
    )
    assert snapshot(run) == before
    result = train(run, "train.steps=6", "train.seed=3", "--allow-config-change")
    assert result.returncode == 0 and "train.seed: 0 -> 3" in result.stdout, result.stderr


def test_a_new_learning_rate_on_resume_is_applied_for_real(run):
    result = train(run, "train.steps=6", "optim.d.lr=0.000123", "optim.g.lr=0.000321")
    assert result.returncode == 0, result.stderr
    assert "optim.d.lr: 0.0001 -> 0.000123" in result.stdout
    records = {r["step"]: r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())}
    assert (records[5]["lr_d"], records[5]["lr_g"]) == (0.000123, 0.000321)
    assert (records[4]["lr_d"], records[4]["lr_g"]) == (0.0001, 0.0001)  # before the resume


def test_a_truncated_checkpoint_falls_back_to_the_newest_good_one_with_a_warning(run):
    weights = run / "checkpoints" / "step_0000004" / "generator.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    result = train(run, "train.steps=5")
    assert result.returncode == 0, result.stderr
    assert "step_0000004: generator.safetensors has" in result.stderr and "truncated" in result.stderr
    assert "resumed from" in result.stdout and "step_0000002 at step 2" in result.stdout
    assert_steps_unique_and_increasing(run)


def test_a_truncated_checkpoint_named_explicitly_is_refused(run):
    weights = run / "checkpoints" / "step_0000004" / "generator.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    line = error_line(train(run, "--resume", str(run / "checkpoints" / "step_0000004"), "train.steps=5"))
    assert "generator.safetensors has" in line and "truncated" in line


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda c: (c / "meta.json").write_text("{not json"), "meta.json has 9 bytes, the manifest says"),
        (lambda c: shutil.rmtree(c / "state"), "is missing"),
        (lambda c: (c / "manifest.json").unlink(), "no readable manifest.json"),
    ],
)
def test_a_damaged_checkpoint_is_a_clear_error_when_named(run, breakage, message):
    checkpoint = run / "checkpoints" / "step_0000004"
    breakage(checkpoint)
    assert message in error_line(train(run, "--resume", str(checkpoint), "train.steps=5"))


def test_a_second_run_on_the_same_directory_is_refused_naming_the_first(tmp_path):
    out = tmp_path / "run"
    first = start_train(out, "train.steps=100000", "checkpoint.every=0")
    try:
        wait_for_output(out, "| loss_d")  # the first log line
        lines_before = len(metric_steps(out))
        line = error_line(train(out, "train.steps=3"))
        assert f"pid {first.pid}" in line and socket.gethostname() in line and "in use by another run" in line
        assert first.poll() is None  # the first run goes on undisturbed
        assert len(metric_steps(out)) >= lines_before
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=60)
    assert first.returncode == 75
    assert_steps_unique_and_increasing(out)


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(run):
    note = {"host": socket.gethostname(), "pid": 2**22 + 17, "started": "2026-01-01 00:00:00"}
    (run / LOCK_FILE).write_text(json.dumps(note))
    result = train(run, "train.steps=5")
    assert result.returncode == 0, result.stderr
    assert "taking over the lock of a run that is no longer running" in result.stderr
    assert f"pid {2**22 + 17}" in result.stderr


@pytest.fixture
def tiny_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.system(f"mount -t tmpfs -o size=1200k tmpfs {mount} 2>/dev/null") != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("cannot mount a tmpfs (needs root) for the disk-full test")
        pytest.skip("needs root to mount a small tmpfs")
    yield mount
    os.system(f"umount {mount}")


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint_latest(tiny_disk):
    out = tiny_disk / "run"
    result = train(
        out, "train.steps=200", "checkpoint.every=1", "checkpoint.keep_last=1000", "log.every=1000"
    )
    line = error_line(result)
    assert "could not write checkpoint" in line and "MiB free" in line and "stays latest" in line
    latest = (out / "checkpoints" / "latest").read_text().strip()
    verify(out / "checkpoints" / latest)
    assert not list((out / "checkpoints").glob(".tmp-*"))  # the partial checkpoint was removed


def test_an_edited_checkpoint_file_of_the_same_size_is_caught_by_its_hash(run):
    weights = run / "checkpoints" / "step_0000004" / "discriminator.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF  # one flipped byte in the tensor data: same size, other content
    weights.write_bytes(bytes(data))
    result = train(run, "train.steps=5")
    assert result.returncode == 0, result.stderr
    assert "discriminator.safetensors does not match its sha256" in result.stderr
    assert "step_0000002 at step 2" in result.stdout
