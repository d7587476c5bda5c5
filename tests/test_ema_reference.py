"""The generator EMA against StyleGAN2's formula (Karras et al. 2020, training_loop.py):

    ema_nimg = ema_kimg * 1000
    if ema_rampup is not None: ema_nimg = min(ema_nimg, cur_nimg * ema_rampup)
    ema_beta = 0.5 ** (batch_size / max(ema_nimg, 1e-8))

`cur_nimg` is the real images seen BEFORE the step (StyleGAN2 adds the step's batch after the
EMA update), `batch_size` the step's global images. Checked at chosen steps, as a half-life, and
through the real loop (`train.ema_images`).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from distgan.checkpoint import load_weights
from distgan.config import load_config
from distgan.ema import GeneratorEMA
from distgan.models import build_generator
from distgan.trainer import train
from tests.backend_helpers import SMALL, TOY


def stylegan2_beta(cur_nimg: float, batch: int, half_life: float, rampup: float | None) -> float:
    ema_nimg = half_life
    if rampup:
        ema_nimg = min(ema_nimg, cur_nimg * rampup)
    return 0.5 ** (batch / max(ema_nimg, 1e-8))


@pytest.mark.parametrize("rampup", [0.05, 0.0])
@pytest.mark.parametrize("cur_nimg", [0, 64, 6_400, 64_000, 200_000, 10_000_000])
def test_decay_at_chosen_steps_is_stylegan2s(cur_nimg, rampup):
    ema = GeneratorEMA(nn.Linear(1, 1), half_life_images=10_000, rampup=rampup)
    beta = ema.decay_at(step=cur_nimg // 64, images_seen=cur_nimg, images=64)
    assert beta == pytest.approx(stylegan2_beta(cur_nimg, 64, 10_000, rampup), rel=1e-12, abs=1e-300)


def test_the_first_step_under_a_ramp_up_copies_the_generator():
    ema = GeneratorEMA(nn.Linear(1, 1), half_life_images=10_000, rampup=0.05)
    assert ema.decay_at(step=0, images_seen=0, images=64) == 0.0  # cur_nimg 0: half-life 0


def test_a_half_life_of_images_halves_the_distance_to_the_generator():
    generator = nn.Linear(3, 2)
    with torch.no_grad():
        for p in generator.parameters():
            p.fill_(0.0)
    ema = GeneratorEMA(generator, half_life_images=1_000, rampup=0.0)
    with torch.no_grad():
        for p in generator.parameters():
            p.fill_(1.0)
    for i in range(10):  # 10 steps of 100 images: one half-life
        ema.update(generator, step=i, images_seen=100 * i, images=100)
    for p in ema.model.parameters():
        assert torch.allclose(p, torch.full_like(p, 0.5), atol=1e-6)
    for i in range(10, 20):  # a second half-life: 3/4 of the way
        ema.update(generator, step=i, images_seen=100 * i, images=100)
    for p in ema.model.parameters():
        assert torch.allclose(p, torch.full_like(p, 0.75), atol=1e-6)


def test_the_loops_ema_images_average_uses_images_before_each_step(tmp_path, fresh_accelerate):
    """`train.ema_images` in the real loop: the saved EMA equals StyleGAN2's average of the saved
    generators, with cur_nimg = the global images BEFORE each step."""
    run, batch, n_critic, half_life, rampup = tmp_path / "run", 8, 2, 40.0, 0.5
    cfg = load_config(
        "configs/quickstart.yaml",
        [
            *SMALL,
            *TOY,
            f"train.out_dir={run}",
            "train.steps=3",
            f"train.n_critic={n_critic}",
            "train.ema_decay=0",
            f"train.ema_images={half_life}",
            f"train.ema_rampup={rampup}",
            "checkpoint.every=1",
            "checkpoint.keep_last=3",
            "log.every=1",
            "log.sample_every=0",
            "log.num_samples=4",
        ],
    )
    assert train(cfg, resume="never") == 0
    torch.manual_seed(cfg.train.seed)  # the EMA starts as G at step 0 (the trainer's init rule)
    generator = build_generator(cfg.model, cfg.sample_shape)
    expected = {k: v.detach().double() for k, v in generator.named_parameters()}
    images = n_critic * batch
    for step in (1, 2, 3):
        load_weights(generator, run / "checkpoints" / f"step_{step:07d}" / "generator.safetensors")
        beta = stylegan2_beta((step - 1) * images, images, half_life, rampup)
        expected = {
            k: beta * expected[k] + (1 - beta) * v.detach().double() for k, v in generator.named_parameters()
        }
    assert 0 < stylegan2_beta(2 * images, images, half_life, rampup) < 1  # the average is a real mix
    ema = build_generator(cfg.model, cfg.sample_shape)
    load_weights(ema, run / "checkpoints" / "step_0000003" / "generator_ema.safetensors")
    for key, value in ema.named_parameters():
        assert torch.allclose(value.double(), expected[key], atol=1e-6), key
