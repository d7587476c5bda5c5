"""The shipped stylegan2 recipes are the official StyleGAN2-ADA configurations they name.

`paper256` and `cifar` below are the official train.py cfg_specs entries (ref_gpus, kimg and the
mixed-precision options aside); G and D are built from the recipe files on the meta device (no
memory, no time) and their parameter counts compared with the official channel formulas.
"""

from __future__ import annotations

import pytest
import torch

from distgan.config import load_config
from distgan.models import build_discriminator, build_generator
from tests.launching import REPO
from tests.test_stylegan2 import count, official_discriminator_count, official_generator_count

OFFICIAL = {
    "paper256": dict(mb=64, mbstd=8, fmaps=0.5, lrate=0.0025, gamma=1, ema=20, ramp=None, map=8, kimg=25000),
    "cifar": dict(mb=64, mbstd=32, fmaps=1, lrate=0.0025, gamma=0.01, ema=500, ramp=0.05, map=2, kimg=100000),
}
RECIPES = {"stylegan2_ffhq256": "paper256", "stylegan2_cifar10": "cifar"}
pytestmark = pytest.mark.usefixtures("one_thread")  # meta tensors: extra threads only spin


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_recipe_carries_the_official_settings(recipe):
    cfg = load_config(str(REPO / "configs" / f"{recipe}.yaml"))
    spec = OFFICIAL[RECIPES[recipe]]
    m, t = cfg.model, cfg.train
    assert (m.latent_dim, m.w_dim, m.channel_max, m.conv_clamp, m.reduced_precision_res) == (
        512,
        512,
        512,
        256,
        4,
    )
    assert m.channel_base == int(spec["fmaps"] * 32768) and m.mapping_layers == spec["map"]
    assert m.mbstd_group == spec["mbstd"] and cfg.data.batch_size == spec["mb"]
    assert cfg.optim.d == cfg.optim.g and (cfg.optim.d.lr, cfg.optim.d.beta1, cfg.optim.d.beta2) == (
        spec["lrate"],
        0.0,
        0.99,
    )
    assert cfg.objective.r1_weight == spec["gamma"] and cfg.objective.r1_every == 16
    assert t.ema_images == spec["ema"] * 1000 and t.ema_rampup == (spec["ramp"] or 0.0)
    assert t.steps * spec["mb"] == spec["kimg"] * 1000
    assert (cfg.augment.policy, cfg.augment.target, cfg.augment.interval) == ("ada", 0.6, 4)
    cifar = RECIPES[recipe] == "cifar"  # train.py's cifar lines: plain D, no style mixing; --cond=1
    assert (m.d_residual, m.style_mixing, m.num_classes) == ((False, 0.0, 10) if cifar else (True, 0.9, 0))


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_recipe_networks_have_the_official_parameter_counts(recipe):
    cfg = load_config(str(REPO / "configs" / f"{recipe}.yaml"))
    m, side = cfg.model, cfg.data.resolution
    with torch.device("meta"):
        generator = build_generator(m, cfg.sample_shape)
        critic = build_discriminator(m, cfg.sample_shape)
    assert count(generator) == official_generator_count(
        m.latent_dim, m.num_classes, m.w_dim, m.mapping_layers, side, m.channel_base
    )
    assert count(critic) == official_discriminator_count(m.num_classes, side, m.channel_base, m.d_residual)
