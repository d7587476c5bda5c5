"""Trainer: exact resume, crash-safe checkpoints, the run-directory contract.

The toy ring and MNIST quality checks live in test_quality_short.py."""

import json

import pytest
import torch
from safetensors.torch import load_file

from distgan.checkpoint import store as ckpt_module
from distgan.config import load_config
from distgan.errors import CheckpointError
from distgan.trainer import train
from tests.conftest import TINY


def tiny_cfg(out_dir, *extra):
    # constant lr: these resume tests stop at a smaller train.steps, which would move an lr decay's start
    overrides = [*TINY, "optim.lr_decay_start=1.0", f"train.out_dir={out_dir}", *extra]
    return load_config("configs/quickstart.yaml", overrides)


def weights(run_dir, step, name):
    return load_file(str(run_dir / "checkpoints" / f"step_{step:07d}" / f"{name}.safetensors"))


def assert_same_tensors(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def optimizer_state(run_dir, step, index):
    name = "optimizer.bin" if index == 0 else f"optimizer_{index}.bin"
    path = run_dir / "checkpoints" / f"step_{step:07d}" / "state" / name
    return torch.load(path, weights_only=False)["state"]


def test_exact_resume_is_bitwise_equal(tmp_path, fresh_accelerate):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train(tiny_cfg(straight, "train.steps=6", "checkpoint.every=0")) == 0
    assert train(tiny_cfg(split, "train.steps=3", "checkpoint.every=0")) == 0
    # Continue the same run directory to 6 steps: --resume auto picks up step 3.
    assert train(tiny_cfg(split, "train.steps=6", "checkpoint.every=0")) == 0
    for name in ("generator", "generator_ema", "discriminator"):
        assert_same_tensors(weights(straight, 6, name), weights(split, 6, name))
    for index in (0, 1):  # G's and D's Adam moments
        a, b = optimizer_state(straight, 6, index), optimizer_state(split, 6, index)
        for param_id in a:
            for key in ("exp_avg", "exp_avg_sq"):
                assert torch.equal(a[param_id][key], b[param_id][key])
    # and the run really changed the weights (not a trivially equal comparison)
    assert not torch.equal(
        weights(split, 3, "generator")["project.weight"], weights(split, 6, "generator")["project.weight"]
    )
    steps = [json.loads(line)["step"] for line in (split / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_crash_mid_save_keeps_latest_on_previous_checkpoint(tmp_path, fresh_accelerate, monkeypatch):
    run = tmp_path / "run"
    real_save = ckpt_module.save_weights
    calls = {"n": 0}

    def flaky_save(module, path):
        calls["n"] += 1
        if calls["n"] == 4:  # second checkpoint: generator, ema, discriminator = 3 calls per save
            raise OSError("disk full (simulated)")
        real_save(module, path)

    monkeypatch.setattr(ckpt_module, "save_weights", flaky_save)
    with pytest.raises(CheckpointError, match="could not write checkpoint .*simulated.* stays latest"):
        train(tiny_cfg(run, "train.steps=4", "checkpoint.every=2"))
    checkpoints = run / "checkpoints"
    assert (checkpoints / "latest").read_text().strip() == "step_0000002"
    assert not (checkpoints / "step_0000004").exists()
    monkeypatch.setattr(ckpt_module, "save_weights", real_save)
    from accelerate.state import AcceleratorState, GradientState, PartialState

    AcceleratorState._reset_state(True), GradientState._reset_state(), PartialState._reset_state()
    assert train(tiny_cfg(run, "train.steps=4", "checkpoint.every=2")) == 0
    assert (checkpoints / "latest").read_text().strip() == "step_0000004"
    meta = json.loads((checkpoints / "step_0000004" / "meta.json").read_text())
    assert meta["step"] == 4 and meta["images_seen"] == 4 * 16
    assert not list(checkpoints.glob(".tmp-*"))  # the torn temp dir was cleaned up


def test_keep_last_clipping_and_critic_boost(tmp_path, fresh_accelerate):
    run = tmp_path / "run"
    cfg = tiny_cfg(
        run,
        "train.steps=5",
        "checkpoint.every=1",
        "checkpoint.keep_last=2",
        "optim.grad_clip=0.5",
        "train.critic_boost_steps=2",
        "train.critic_boost_n_critic=3",
    )
    assert train(cfg) == 0
    names = sorted(p.name for p in (run / "checkpoints").glob("step_*"))
    assert names == ["step_0000004", "step_0000005"]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # 3 D steps before each of the first 2 G steps, then 1: images seen after each G step
    assert [r["images_seen"] for r in records] == [16 * n for n in (3, 6, 7, 8, 9)]
    assert all(r["d_grad_norm"] > 0 and r["g_grad_norm"] > 0 for r in records)  # norms before clipping
