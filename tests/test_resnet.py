"""model.arch=resnet: shapes and dtypes at every resolution, parameter counts, config errors, footprint.

The SN-ResNet is built through the registry (build_generator / build_discriminator), as train()
builds it, with tiny widths so that even 256 px runs in milliseconds.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch

from distgan.config import ConfigError, load_config
from distgan.memory_check import estimate
from distgan.models import build_discriminator, build_generator

WIDTH = 4
BATCH = 2


def resnet_cfg(resolution: int, *extra: str):
    return load_config(
        None,
        [
            "model.arch=resnet",
            "model.channels=3",
            f"data.resolution={resolution}",
            f"model.g_width={WIDTH}",
            f"model.d_width={WIDTH}",
            *extra,
        ],
    )


def conditional(num_classes: int) -> list[str]:
    if not num_classes:
        return []
    return [f"model.num_classes={num_classes}", "model.conditioning=projection", "data.label_column=label"]


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# (resolution, num_classes, attention_res) -> (G parameters, D parameters) at width 4, latent 100, RGB.
# Recorded from the built models: a silent change of the architecture (a block, a width, a bias, a
# shortcut, the attention) changes one of these numbers.
PARAMETERS = {
    (32, 0, 0): (41_251, 4_425),
    (32, 0, 16): (41_572, 4_506),
    (32, 5, 0): (42_019, 4_465),
    (32, 5, 16): (42_340, 4_546),
    (64, 0, 0): (143_523, 76_861),
    (64, 0, 16): (143_844, 76_942),
    (64, 5, 0): (144_963, 77_181),
    (64, 5, 16): (145_284, 77_262),
    (128, 0, 0): (221_795, 150_717),
    (128, 0, 16): (223_076, 151_038),
    (128, 5, 0): (224_259, 151_037),
    (128, 5, 16): (225_540, 151_358),
    (256, 0, 0): (241_475, 170_269),
    (256, 0, 16): (242_756, 171_550),
    (256, 5, 0): (244_451, 170_589),
    (256, 5, 16): (245_732, 171_870),
}
# Checked by hand for (32, 0, 0), widths 16 in G and 8 in D:
#   G: linear 100*256+256 = 25,856; 3 up blocks of BN 32 + conv 2,320 + BN 32 + conv 2,320 +
#      1x1 shortcut 272 = 4,976 each; output BN 32 + conv 16*3*9+3 = 435 -> 41,251.
#   D: first block 224 + 584 + shortcut 32 = 840; down block 584 + 584 + 72 = 1,240; two
#      identity-shortcut blocks 1,168 each; head 9 -> 4,425.
#   Attention at 16 px adds 8 + 8 + 32 + 32 (1x1 convs, no bias) + gamma = 81 to D (8 channels).


@pytest.mark.parametrize("resolution,num_classes,attention", list(PARAMETERS), ids=str)
def test_shapes_dtypes_and_parameter_counts(resolution, num_classes, attention):
    cfg = resnet_cfg(resolution, *conditional(num_classes), f"model.attention_res={attention}")
    torch.manual_seed(0)
    generator, critic = (
        build_generator(cfg.model, cfg.sample_shape),
        build_discriminator(cfg.model, cfg.sample_shape),
    )
    assert (count(generator), count(critic)) == PARAMETERS[(resolution, num_classes, attention)]
    assert bool(generator.attention) == bool(critic.attention) == bool(attention)
    labels = torch.tensor([0, num_classes - 1]) if num_classes else None
    latent = torch.randn(BATCH, cfg.model.latent_dim)
    images = generator(latent, labels)
    assert images.shape == (BATCH, 3, resolution, resolution) and images.dtype == torch.float32
    assert images.abs().max() <= 1  # tanh output: the data range
    logits = critic(images, labels)
    assert logits.shape == (BATCH,) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    # bf16 autocast (the GPU recipe's precision): forward and backward run and stay finite
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = critic(generator(latent, labels), labels).float().mean()
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in generator.parameters() if p.grad is not None)


def test_labels_change_both_networks_and_are_required():
    cfg = resnet_cfg(32, *conditional(5))
    torch.manual_seed(0)
    generator, critic = (
        build_generator(cfg.model, cfg.sample_shape).eval(),
        build_discriminator(cfg.model, cfg.sample_shape).eval(),
    )
    with torch.no_grad():  # class-conditional BatchNorm starts as the identity: give it a class effect
        for block in generator.blocks:
            block.norm1.gain.weight[3] += 0.5
    latent, zeros, threes = torch.randn(BATCH, 100), torch.zeros(BATCH, dtype=torch.long), torch.full((2,), 3)
    with torch.no_grad():
        images = generator(latent, zeros)
        assert not torch.allclose(images, generator(latent, threes))
        assert not torch.allclose(critic(images, zeros), critic(images, threes))  # the projection term
    with pytest.raises(ValueError, match="class-conditional: pass labels"):
        generator(latent)
    with pytest.raises(ValueError, match="class-conditional: pass labels"):
        critic(images)


def test_attention_sits_at_the_configured_side():
    cfg = resnet_cfg(64, "model.attention_res=32")
    generator, critic = (
        build_generator(cfg.model, cfg.sample_shape),
        build_discriminator(cfg.model, cfg.sample_shape),
    )
    seen = {}
    for name, model in (("g", generator), ("d", critic)):
        for attention in model.attention.values():
            attention.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o.shape[-1]))
    critic(generator(torch.randn(BATCH, 100)))
    assert seen == {"g": 32, "d": 32}


def test_penalty_double_backward_through_d_with_attention_and_projection():
    """R1 / WGAN-GP take D's input gradient with create_graph=True: every D block must support it."""
    cfg = resnet_cfg(32, *conditional(5), "model.attention_res=16", "model.spectral_norm=d")
    critic = build_discriminator(cfg.model, cfg.sample_shape)
    with torch.no_grad():
        critic.attention["0"].gamma.fill_(0.5)  # make the attention path count
    x = torch.randn(BATCH, 3, 32, 32, requires_grad=True)
    (grad,) = torch.autograd.grad(critic(x, torch.tensor([1, 4])).sum(), x, create_graph=True)
    grad.square().sum().backward()
    attention = critic.attention["0"]
    assert (
        attention.gamma.grad is not None
        and attention.query.parametrizations.weight.original.grad.abs().sum() > 0
    )


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["data.resolution=28"], "data.resolution: model.arch=resnet can make [32, 64, 128, 256] px"),
        (["model.spectral_norm=D"], "model.spectral_norm: must be one of 'none', 'd', 'g', 'both', got 'D'"),
        (["model.conditioning=auxiliary"], "model.conditioning: must be one of 'concat', 'projection'"),
        (["model.num_classes=5", "data.label_column=label"], "model.conditioning: a conditional resnet"),
        (
            ["model.arch=mlp", "model.num_classes=3", "model.conditioning=projection"],
            "model.conditioning: a conditional mlp (model.num_classes > 0) conditions by concat",
        ),
        (
            ["model.arch=dcgan", "model.attention_res=16"],
            "model.attention_res: model.arch=dcgan has no self-attention",
        ),
        (
            ["model.attention_res=64"],
            "model.attention_res: at data.resolution=64 valid: 0 (off) or one of [8, 16, 32], got 64",
        ),
        (
            ["model.attention_res=12"],
            "model.attention_res: at data.resolution=64 valid: 0 (off) or one of [8, 16, 32], got 12",
        ),
        (
            ["model.attention_res=-8"],
            "model.attention_res: at data.resolution=64 valid: 0 (off) or one of [8, 16, 32], got -8",
        ),
        (["model.d_norm=batch"], "model.d_norm: model.arch=resnet has no normalisation in D"),
        (["model.d_dropout=0.3"], "model.d_dropout: model.arch=resnet has no dropout in D"),
        (["data.source=toy", "data.path=ring8"], "model.arch: toy 2D data"),
    ],
)
def test_bad_model_options_name_the_key_and_the_valid_values(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        resnet_cfg(64, *overrides)


def test_bad_option_exits_2_with_one_line_before_compute(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "distgan.train", "--config", "configs/quickstart.yaml", "model.arch=resnet",
         "data.resolution=32", "model.d_dropout=0", "model.spectral_norm=all", f"train.out_dir={out}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: model.spectral_norm: must be one of 'none', 'd', 'g', 'both', got 'all'"
    ]
    assert not out.exists()


@pytest.mark.parametrize("spectral_norm", ["none", "d", "g", "both"])
def test_spectral_norm_option_parametrizes_the_chosen_networks(spectral_norm):
    cfg = resnet_cfg(32, *conditional(5), f"model.spectral_norm={spectral_norm}")
    generator, critic = (
        build_generator(cfg.model, cfg.sample_shape),
        build_discriminator(cfg.model, cfg.sample_shape),
    )
    for model, flag in ((generator, "g"), (critic, "d")):
        weights = [n for n, p in model.named_parameters() if n.endswith("weight") or "weight.original" in n]
        normalised = [n for n in weights if n.endswith("parametrizations.weight.original")]
        if spectral_norm in (flag, "both"):
            # every conv / linear weight (and D's projection); class-conditional BN gains are left alone
            plain = [n for n in weights if n not in normalised]
            assert normalised and all(
                n.endswith(("gain.weight", "bias.weight", "norm.weight")) for n in plain
            )
            assert any("shortcut" in n for n in normalised) and any("conv1" in n for n in normalised)
            assert (flag == "d") == any(n.startswith("projection.") for n in normalised)
        else:
            assert not normalised


def test_footprint_counts_the_resnet_it_would_build():
    cfg = resnet_cfg(128, *conditional(5), "model.attention_res=32", "model.spectral_norm=both")
    footprint = estimate(cfg, world_size=1)  # on the meta device: nothing allocated
    assert footprint.generator_params == count(build_generator(cfg.model, cfg.sample_shape))
    assert footprint.discriminator_params == count(build_discriminator(cfg.model, cfg.sample_shape))
    # the activations at 128 px grow with the batch
    bigger = estimate(resnet_cfg(128, *conditional(5), "model.attention_res=32", "data.batch_size=128"), 1)
    assert bigger.activations > 1.9 * footprint.activations


@pytest.mark.parametrize(
    "resolution,attention,published",
    [(64, 32, 20_572_842), (128, 64, 39_449_258), (256, 64, 44_446_890)],
)
def test_discriminator_has_biggan_pytorch_size_at_ch_64(resolution, attention, published):
    """BigGAN-PyTorch's D at ch=64 with 1000 classes (sizes published in a port's header) has the same
    blocks, widths and attention; its class head is a linear layer with 1000 biases, ours a bias-free
    projection embedding. Counted on the meta device: nothing is allocated."""
    cfg = resnet_cfg(resolution, "model.d_width=64", *conditional(1000), f"model.attention_res={attention}")
    assert estimate(cfg, world_size=1).discriminator_params == published - 1000
