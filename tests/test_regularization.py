"""Regularization that does not depend on the number of processes: lazy R1 (objective.r1_every) and
the EMA measured in images (train.ema_images). The 1-vs-2-process EMA check runs in
tests/distributed/test_equivalence.py."""

from __future__ import annotations

import json

import pytest
import torch

from distgan import objectives
from distgan.config import ConfigError, load_config
from distgan.ema import GeneratorEMA
from distgan.trainer import train
from tests.test_trainer import tiny_cfg


def critic_and_batch():
    torch.manual_seed(0)
    critic = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)
    )
    real, fake = torch.randn(6, 1, 4, 4), torch.randn(6, 1, 4, 4)
    return critic, real, fake


def d_gradient(weight: float, every: int, due: bool) -> list[torch.Tensor]:
    critic, real, fake = critic_and_batch()
    objective = load_config(None, [f"objective.r1_weight={weight}", f"objective.r1_every={every}"]).objective
    scores = critic(torch.cat([real, fake])).squeeze(1)
    d_real, d_fake = scores.chunk(2)
    penalty_discriminator = lambda x, labels: critic(x).squeeze(1)  # noqa: E731
    losses = objectives.discriminator_losses(
        objective, d_real, d_fake, penalty_discriminator, real, fake, r1_due=due
    )
    return torch.autograd.grad(losses["loss"], list(critic.parameters()))


def test_lazy_r1_step_has_the_gradient_of_weight_times_n():
    lazy = d_gradient(2.0, every=4, due=True)
    eager = d_gradient(8.0, every=1, due=True)
    for a, b in zip(lazy, eager, strict=True):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-7)
    plain = d_gradient(2.0, every=1, due=True)
    assert not all(torch.allclose(a, b) for a, b in zip(lazy, plain, strict=True))  # weight really x4


def test_lazy_r1_skipped_step_has_the_adversarial_gradient_only():
    skipped = d_gradient(2.0, every=4, due=False)
    adversarial = d_gradient(0.0, every=1, due=True)
    for a, b in zip(skipped, adversarial, strict=True):
        assert torch.equal(a, b)


def test_training_applies_r1_on_every_nth_d_step(tmp_path, fresh_accelerate):
    run = tmp_path / "run"
    cfg = tiny_cfg(
        run, "train.steps=5", "checkpoint.every=0", "objective.r1_weight=1", "objective.r1_every=2"
    )
    assert train(cfg) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "r1" in r] == [1, 3, 5]  # D steps 0, 2, 4 (one D step per G step)


def test_ema_by_images_uses_the_half_life_and_its_ramp_up():
    ema = GeneratorEMA(torch.nn.Linear(2, 2), half_life_images=1000)
    assert ema.decay_at(step=7, images_seen=10**6, images=500) == pytest.approx(0.5**0.5)
    ramped = GeneratorEMA(torch.nn.Linear(2, 2), half_life_images=1000, rampup=0.05)
    assert ramped.decay_at(step=1, images_seen=4000, images=400) == pytest.approx(0.5**2)  # half-life 200
    assert ramped.decay_at(step=1, images_seen=10**6, images=500) == pytest.approx(0.5**0.5)
    assert ramped.decay_at(step=1, images_seen=0, images=64) == 0.0  # first step: the average is G


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["train.ema_decay=0.999", "train.ema_images=10000"], "train.ema_images"),
        (["train.ema_images=-1"], "train.ema_images"),
        (["objective.r1_every=0"], "objective.r1_every"),
        (["data.source=toy", "data.path=ring8", "model.arch=mlp", "data.mirror=true"], "data.mirror"),
    ],
)
def test_bad_regularization_values_name_the_key(overrides, key):
    with pytest.raises(ConfigError, match=f"^{key}: "):
        load_config(None, overrides)
