"""Model registry: build G and D from the experiment config (the only module here that reads it)."""

from __future__ import annotations

from torch import nn

from distgan.config import ExperimentConfig
from distgan.models.base import Generator
from distgan.models.dcgan import DCGANDiscriminator, DCGANGenerator
from distgan.models.mlp import MLPDiscriminator, MLPGenerator
from distgan.models.resnet import ResNetDiscriminator, ResNetGenerator
from distgan.models.spectral import apply_spectral_norm, spectral_norm_targets

__all__ = ["Generator", "build_generator", "build_discriminator"]


def build_generator(cfg: ExperimentConfig) -> Generator:
    m = cfg.model
    if m.arch == "mlp":
        generator = MLPGenerator(
            m.latent_dim,
            cfg.sample_shape,
            m.num_classes,
            m.g_width,
            tanh_output=not cfg.data.is_toy,
            norm=m.g_norm,
            latent_components=m.latent_components,
            latent_component_std=m.latent_component_std,
        )
    elif m.arch == "resnet":
        generator = ResNetGenerator(
            m.latent_dim, m.channels, cfg.data.resolution, m.num_classes, m.g_width, m.attention_res
        )
    else:
        generator = DCGANGenerator(m.latent_dim, m.channels, cfg.data.resolution, m.num_classes, m.g_width)
    if spectral_norm_targets(m.spectral_norm)[0]:
        apply_spectral_norm(generator)
    return generator


def build_discriminator(cfg: ExperimentConfig) -> nn.Module:
    m = cfg.model
    if m.arch == "mlp":
        critic = MLPDiscriminator(cfg.sample_shape, m.num_classes, m.d_width, m.d_norm, m.d_dropout, m.pack)
    elif m.arch == "resnet":
        critic = ResNetDiscriminator(
            m.channels, cfg.data.resolution, m.num_classes, m.d_width, m.attention_res
        )
    else:
        critic = DCGANDiscriminator(
            m.channels, cfg.data.resolution, m.num_classes, m.d_width, m.d_norm, m.d_dropout, m.conditioning
        )
    if spectral_norm_targets(m.spectral_norm)[1]:
        apply_spectral_norm(critic)
    return critic
