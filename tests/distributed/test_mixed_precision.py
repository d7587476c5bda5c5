"""Mixed precision: bf16 training (CPU, 2 processes, the shipped accelerate_config.yaml) keeps the
penalty finite; the fp16 penalty recipe and the skipped-step logic, unit-tested with a CPU GradScaler.

fp16 itself needs a GPU (FACTS.md: on CPU accelerate runs it in fp32), so the fp16 tests drive the
REAL AccelerateBackend with `torch.amp.GradScaler("cpu")` put where accelerate keeps its scaler,
and fp16 autocast on CPU for the penalty's input gradients.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml

from distgan import step
from distgan.config import load_config
from distgan.data import Batch
from distgan.distributed.ddp import AccelerateBackend
from distgan.models import build_discriminator, build_generator
from distgan.objectives import gradient_penalty
from tests.launching import REPO, TINY_TRAIN, accelerate_launch, run


@pytest.mark.slow
def test_bf16_two_processes_with_accelerate_config_keeps_penalty_finite(tmp_path):
    out = tmp_path / "run"
    flags = ("--config_file", str(REPO / "accelerate_config.yaml"))  # MULTI_GPU + bf16, as shipped
    run(
        accelerate_launch(
            2,
            "-m",
            "distgan.train",
            *TINY_TRAIN,
            "objective.loss=wgan-gp",
            "model.d_norm=layer",
            "train.n_critic=2",
            "train.steps=3",
            f"train.out_dir={out}",
            flags=flags,
        )
    )
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["train"]["mixed_precision"] == "bf16"  # adopted from accelerate_config.yaml
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [1, 2, 3]
    for m in lines:
        for key in ("gp", "gp_grad_norm", "loss_d", "loss_g"):
            assert math.isfinite(m[key]), (key, m)
        assert m["gp_grad_norm"] > 0


def deep_critic(std: float) -> torch.nn.Module:
    torch.manual_seed(0)
    critic = torch.nn.Sequential(*(torch.nn.Linear(16, k, bias=False) for k in (16, 16, 1)))
    with torch.no_grad():
        for p in critic.parameters():
            p.normal_(0, std)
    return critic


def test_fp16_penalty_needs_the_loss_scale():
    """Input gradients of ~1e-8 underflow in fp16 unless the critic output is scaled first."""
    critic = deep_critic(5e-4)

    def fp16_critic(x, labels=None):
        with torch.autocast("cpu", dtype=torch.float16):
            return critic(x).squeeze(1)

    real, fake, alpha = torch.randn(4, 16), torch.randn(4, 16), torch.rand(4)
    _, exact = gradient_penalty(lambda x, labels=None: critic(x).squeeze(1), real, fake, alpha=alpha)
    _, unscaled = gradient_penalty(fp16_critic, real, fake, alpha=alpha)
    _, scaled = gradient_penalty(fp16_critic, real, fake, alpha=alpha, loss_scale=torch.tensor(2.0**14))
    assert unscaled == 0  # underflow: the penalty would push every gradient norm to 1 for nothing
    assert abs(scaled - exact) / exact < 1e-3


def fp16_backend(cfg) -> AccelerateBackend:
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    accelerator.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)  # before prepare, as fp16 would
    torch.manual_seed(0)
    return AccelerateBackend(
        accelerator,
        cfg,
        build_generator(cfg.model, cfg.sample_shape),
        build_discriminator(cfg.model, cfg.sample_shape),
    )


def snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def same(a, module):
    return all(torch.equal(x, p) for x, p in zip(a, module.parameters(), strict=True))


def test_fp16_overflow_step_is_skipped_by_both_optimizers(fresh_accelerate, tmp_path):
    cfg = load_config(
        None,
        [
            "model.arch=mlp",
            "model.g_width=4",
            "model.d_width=4",
            "model.latent_dim=8",
            "data.batch_size=4",
            "objective.loss=wgan-gp",
        ],
    )
    backend = fp16_backend(cfg)
    scaler = backend.accelerator.scaler
    images = torch.rand(4, 1, 28, 28) * 2 - 1

    d_before = snapshot(backend.discriminator_module)
    assert float(backend.loss_scale()) == 2.0**10  # the penalty gets the scaler's scale
    healthy = step.d_step(backend, cfg, Batch(images, None))
    assert healthy["d_skipped_steps"] == 0 and not same(d_before, backend.discriminator_module)

    # Overflow in D's step: an inf in the batch makes D's gradients non-finite.
    poisoned = images.clone()
    poisoned[0, 0, 0, 0] = float("inf")
    d_before, scale = snapshot(backend.discriminator_module), scaler.get_scale()
    out = step.d_step(backend, cfg, Batch(poisoned, None))
    assert out["d_skipped_steps"] == 1 and same(d_before, backend.discriminator_module)
    assert scaler.get_scale() == scale / 2

    # Overflow in G's step: an inf latent makes G's gradients non-finite.
    g_before, scale = snapshot(backend.generator_module), scaler.get_scale()
    latent = torch.randn(4, 8)
    latent[0, 0] = float("inf")
    out = step.g_step(backend, cfg, 4, "cpu", latent=latent)
    assert out["g_skipped_steps"] == 1 and same(g_before, backend.generator_module)
    assert scaler.get_scale() == scale / 2

    # ... and the next healthy G step is applied again.
    out = step.g_step(backend, cfg, 4, "cpu")
    assert out["g_skipped_steps"] == 0 and not same(g_before, backend.generator_module)

    # The scaler state is part of the checkpoint.
    backend.save_state(tmp_path / "state")
    assert (tmp_path / "state" / "scaler.pt").is_file()
    saved_scale = scaler.get_scale()
    scaler.update(new_scale=1.0)
    backend.load_state(tmp_path / "state")
    assert backend.accelerator.scaler.get_scale() == saved_scale
