"""PacGAN packing (model.pack): mlp and dcgan D's judge groups of m samples, config checks, a real step."""

import json
import math

import pytest
import torch

from distgan.checkpoint import load_weights, resolve_checkpoint
from distgan.config import ConfigError, load_config, override
from distgan.models import build_discriminator
from distgan.trainer import train

TOY = ["model.g_width=8", "model.d_width=8", "data.batch_size=16", "data.toy_samples=64"]


def test_packed_mlp_discriminator_takes_m_samples_jointly():
    cfg = load_config("configs/toy_ring.yaml", [*TOY, "model.pack=4"])
    d = build_discriminator(cfg.model, cfg.sample_shape)
    first = d.net[0]
    assert first.in_features == 4 * 2  # m * (2-D point)
    x = torch.randn(16, 2)
    assert d(x).shape == (4,)  # one score per group of 4
    # a group's score depends on all its members and on no other group
    moved = x.clone()
    moved[1] += 1.0
    changed = d(moved) != d(x)
    assert changed.tolist() == [True, False, False, False]


def test_pack_must_divide_the_per_process_batch_and_needs_a_family_that_packs():
    cfg = load_config("configs/toy_ring.yaml", TOY)
    with pytest.raises(ConfigError, match="model.pack"):
        override(cfg, ["model.pack=3"])  # 16 % 3 != 0
    with pytest.raises(ConfigError, match="model.pack"):
        override(cfg, ["model.pack=8"]).validate(world_size=4)  # 16 / 4 processes = 4 per process
    with pytest.raises(ConfigError, match="model.pack"):
        load_config("configs/celeba_resnet.yaml", ["model.pack=2"])
    with pytest.raises(ConfigError, match="model.pack"):
        override(cfg, ["model.pack=0"])


def test_a_packed_training_run_finishes_with_finite_losses(tmp_path, fresh_accelerate):
    cfg = load_config(
        "configs/toy_ring.yaml",
        [
            *TOY,
            "model.pack=2",
            f"train.out_dir={tmp_path}",
            "train.steps=2",
            "log.every=1",
            "log.sample_every=0",
            "checkpoint.every=0",
            "train.n_critic=1",
        ],
    )
    assert train(cfg, resume="never") == 0
    ckpt = resolve_checkpoint(tmp_path)
    d = build_discriminator(cfg.model, cfg.sample_shape)
    load_weights(d, ckpt / "discriminator.safetensors")  # strict: the saved D is the packed one
    assert d.net[0].in_features == 2 * 2
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    d_losses = [line["loss_d"] for line in lines if "loss_d" in line]
    assert len(d_losses) == 2 and all(math.isfinite(v) for v in d_losses)


def test_packed_dcgan_discriminator_scores_groups_stacked_on_the_channel_axis():
    cfg = load_config("configs/stacked_mnist.yaml", ["model.d_width=4", "model.pack=4", "data.batch_size=16"])
    d = build_discriminator(cfg.model, cfg.sample_shape)
    assert d.features[0].in_channels == 4 * 3  # m * (R, G, B)
    x = torch.randn(8, 3, 28, 28)
    assert d(x).shape == (2,)  # one score per group of 4
    for i in range(8):  # moving sample i changes its own group's score (consecutive samples), no other
        moved = x.clone()
        moved[i] += 1.0
        assert (d(moved) != d(x)).tolist() == [i < 4, i >= 4], i
    with pytest.raises(ConfigError, match="model.pack"):  # the projection D cannot pack
        load_config("configs/quickstart.yaml", ["model.pack=2"])
    conditional = load_config(
        "configs/quickstart.yaml", ["model.pack=2", "model.conditioning=concat", "model.d_width=4"]
    )
    labels = torch.arange(4) % 10
    packed = build_discriminator(conditional.model, conditional.sample_shape)
    assert packed(torch.randn(4, 1, 28, 28), labels).shape == (2,)  # class maps packed with their samples
