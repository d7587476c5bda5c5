"""Under the launcher's elastic agent (`accelerate launch --max_restarts N`, i.e. torchrun's), a
worker killed mid-run makes the agent restart the whole group, and the restarted group continues
from the last complete checkpoint (--resume auto) to the end. The killed worker is rank 0: the one
that holds the run directory's lock and writes the checkpoints. Without a restart left, the same
kill ends the launch with an error: the restart is what finished the run.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from distgan.checkpoint.locate import latest_checkpoint, step_of
from distgan.distributed.restarted_group import join_restarted_group, restart_count, store_prefix
from tests.launching import REPO, TINY_TRAIN, accelerate_launch, cpu_env, worker_pids

STEPS = 24
EVERY = 4
# Hang guard, not a speed bound: two group start-ups and the agent's shutdown on a loaded machine.
HANG_GUARD_S = 300


def kill_rank0_after_first_checkpoint(out, max_restarts: int) -> tuple[subprocess.CompletedProcess, int]:
    """Launch 2 processes; SIGKILL rank 0 as soon as the first checkpoint is complete. Returns the
    launch's result and the step of the checkpoint that was `latest` when the kill was sent."""
    command = accelerate_launch(
        2,
        "--max_restarts",
        str(max_restarts),
        "-m",
        "distgan.train",
        *TINY_TRAIN,
        f"train.steps={STEPS}",
        f"checkpoint.every={EVERY}",
        f"train.out_dir={out}",
    )
    launcher = subprocess.Popen(
        command, cwd=REPO, env=cpu_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    latest, deadline = out / "checkpoints" / "latest", time.monotonic() + HANG_GUARD_S
    try:
        pids: dict[int, int] = {}
        while not latest.exists():  # the pids are known before the checkpoint: the kill is immediate
            assert launcher.poll() is None, launcher.communicate()[0][-4000:]
            assert time.monotonic() < deadline, "no checkpoint was written"
            pids = pids if len(pids) == 2 else worker_pids(str(out))
            time.sleep(0.05)
        pids = pids if len(pids) == 2 else worker_pids(str(out))
        os.kill(pids[0], signal.SIGKILL)
        killed_after = step_of(out / "checkpoints" / latest.read_text().strip())
        output = launcher.communicate(timeout=HANG_GUARD_S)[0]
    finally:
        if launcher.poll() is None:
            launcher.kill()
        for pid in worker_pids(str(out)).values():
            os.kill(pid, signal.SIGKILL)
    return subprocess.CompletedProcess(command, launcher.returncode, output), killed_after


@pytest.mark.slow
def test_a_restarted_group_resumes_from_the_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    result, killed_after = kill_rank0_after_first_checkpoint(out, max_restarts=1)
    output = result.stdout
    assert result.returncode == 0, output[-4000:]
    resumed = re.findall(r"resumed from (\S+) at step (\d+)", output)
    assert len(resumed) == 1, output[-4000:]  # once: the restarted group, never the first one
    checkpoint, step = resumed[0][0], int(resumed[0][1])
    # the newest complete checkpoint the first group left: at least the one seen at the kill
    assert killed_after <= step < STEPS and step % EVERY == 0, output[-4000:]
    assert step_of(Path(checkpoint)) == step
    after_resume = output[output.index("resumed from") :]
    first_step = re.search(r"^step\s+(\d+)/", after_resume, re.MULTILINE)
    assert first_step and int(first_step.group(1)) == step + 1, after_resume[:2000]  # not from 0
    assert f"done: {STEPS} steps" in output, output[-4000:]
    assert "taking over the lock of a run that is no longer running" in output  # the dead rank 0's
    final = latest_checkpoint(out)  # verifies the manifest: every file as written
    assert final is not None and step_of(final) == STEPS


@pytest.mark.slow
def test_without_a_restart_left_the_same_kill_ends_the_launch(tmp_path):
    out = tmp_path / "run"
    result, _ = kill_rank0_after_first_checkpoint(out, max_restarts=0)
    assert result.returncode != 0
    assert "resumed from" not in result.stdout
    assert f"done: {STEPS} steps" not in result.stdout
    assert step_of(latest_checkpoint(out)) < STEPS


def test_only_a_restart_on_the_agents_store_forms_its_own_group(monkeypatch):
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "2")
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "False")  # a store per group: nothing stale
    assert restart_count() == 0
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    assert restart_count() == 2
    assert store_prefix(2) != store_prefix(1)
    monkeypatch.setenv("WORLD_SIZE", "1")  # one process: no group to form
    assert not join_restarted_group(timeout_s=5)
