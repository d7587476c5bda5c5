"""A stop signal inside a long critic phase is honoured within seconds, and the resume continues
the unfinished phase exactly (issue 11, section 4)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from tests.reliability.reliability_cli import start_train, train, wait_for_output

LONG_PHASE = ["train.n_critic=800", "train.steps=2", "checkpoint.every=0", "log.every=1"]


def final_weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(out / "checkpoints" / "step_0000002" / "generator.safetensors")


def test_sigterm_inside_a_long_critic_phase_checkpoints_mid_phase_and_resumes_exactly(tmp_path):
    stopped = tmp_path / "stopped"
    run = start_train(stopped, *LONG_PHASE)
    wait_for_output(stopped, "data:")  # printed right before the models are built and trained
    time.sleep(0.3)
    run.send_signal(signal.SIGTERM)
    run.wait(timeout=300)  # a hang guard only: no wall-clock bound (CI machines may be loaded)
    assert run.returncode == 75, Path(f"{stopped}.stderr").read_text()
    # the whole 800-D-step phase was not waited for: the checkpoint is from inside it (below)
    (checkpoint,) = (stopped / "checkpoints").glob("step_*")
    meta = json.loads((checkpoint / "meta.json").read_text())
    assert 0 < meta["critic_steps"] < 800, meta  # stopped inside the phase, not at its end

    resumed = train(stopped, *LONG_PHASE)
    assert resumed.returncode == 0, resumed.stderr
    straight = tmp_path / "straight"
    assert train(straight, *LONG_PHASE).returncode == 0
    ours, reference = final_weights(stopped), final_weights(straight)
    assert ours.keys() == reference.keys()
    assert all(torch.equal(ours[k], reference[k]) for k in ours)  # bitwise: the phase was continued
