"""A run directory written by distgan 0.1.0 (the fixture) still resumes, bitwise.

The fixture is a tiny class-conditional DCGAN run (ADA with p moving every step, EMA by images,
lazy R1, lr decay) checkpointed at step 3 of 6, plus the weights that the same run held after an
uninterrupted step 6. Resuming the checkpoint with today's code must reproduce those weights
exactly: checkpoint layout, restored state and training math are all unchanged.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from distgan.config import load_config

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "run_written_by_v0_1"


@pytest.mark.usefixtures("fresh_accelerate")
def test_old_run_directory_resumes_bitwise(tmp_path, monkeypatch):
    from distgan.trainer import train

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)  # the fixture was written on one thread
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run, ignore=shutil.ignore_patterns("expected_step_6"))
    cfg = load_config(run / "config.yaml", [f"train.out_dir={run}"])
    assert train(cfg, resume="auto", allow_config_change=True) == 0

    final = run / "checkpoints" / "step_0000006"
    expected = FIXTURE / "expected_step_6"
    for name in ("generator", "generator_ema", "discriminator"):
        got, want = load_file(final / f"{name}.safetensors"), load_file(expected / f"{name}.safetensors")
        assert got.keys() == want.keys()
        for key in want:
            assert torch.equal(got[key], want[key]), f"{name}.{key} differs after the resume"
    meta, want_meta = (json.loads((p / "meta.json").read_text()) for p in (final, expected))
    for key in ("step", "images_seen", "augment_p", "lr_scale"):
        assert meta[key] == want_meta[key], key


@pytest.mark.usefixtures("fresh_accelerate")
def test_a_checkpoint_holds_g_and_d_weights_once(tmp_path):
    from distgan.trainer import train

    cfg = load_config(
        FIXTURE / "config.yaml", [f"train.out_dir={tmp_path}", "train.steps=1", "checkpoint.every=1"]
    )
    assert train(cfg, resume="never") == 0
    checkpoint = tmp_path / "checkpoints" / "step_0000001"
    assert {"generator.safetensors", "discriminator.safetensors"} <= {p.name for p in checkpoint.iterdir()}
    assert [p.name for p in (checkpoint / "state").iterdir() if "model" in p.name] == []


class _TwoRankAccelerator:
    """Rank 0 of 2 as the Checkpointer sees it (barriers are no-ops: one process plays the rank)."""

    num_processes, process_index, is_main_process = 2, 0, True

    def wait_for_everyone(self):
        pass

    def print(self, *args):
        pass


class _PlainBackend:
    writes_weights = False

    def __init__(self, generator, discriminator):
        self.generator_module, self.discriminator_module = generator, discriminator

    def save_state(self, directory):
        directory.mkdir(parents=True, exist_ok=True)

    def load_state(self, directory):
        pass


def test_a_resume_gives_each_rank_its_own_batchnorm_stats_not_the_saved_average(tmp_path):
    from distgan.checkpoint import Checkpointer, CheckpointParts

    def networks():
        torch.manual_seed(0)
        return torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 1)

    generator, discriminator = networks()
    own = {"g.running_mean": torch.tensor([1.0, 2.0, 3.0])}  # this rank's stats ...
    generator.running_mean.copy_(torch.tensor([5.0, 5.0, 5.0]))  # ... while G holds the ranks' average
    parts = CheckpointParts(
        _PlainBackend(generator, discriminator), shared=[], per_rank={},
        weights={"generator": generator, "discriminator": discriminator},
        restored_weights=("generator", "discriminator"), facts={"step": 1},
    )  # fmt: skip
    saved = Checkpointer(tmp_path, _TwoRankAccelerator(), parts, keep_last=2).save(1, own)

    generator, discriminator = networks()  # a fresh process
    parts.backend, parts.weights = (
        _PlainBackend(generator, discriminator),
        {"generator": generator, "discriminator": discriminator},
    )
    Checkpointer(tmp_path, _TwoRankAccelerator(), parts, keep_last=2).restore(saved)
    assert torch.equal(generator.running_mean, own["g.running_mean"])  # its own, not the average
