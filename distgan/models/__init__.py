"""Model registry: build G and D from the experiment config (the only module here that reads it)."""

from __future__ import annotations

from torch import nn

from distgan.config import ExperimentConfig
from distgan.models.base import Generator
from distgan.models.dcgan import DCGANDiscriminator, DCGANGenerator
from distgan.models.mlp import MLPDiscriminator, MLPGenerator

__all__ = ["Generator", "build_generator", "build_discriminator"]


def build_generator(cfg: ExperimentConfig) -> Generator:
    m = cfg.model
    if m.arch == "mlp":
        return MLPGenerator(
            m.latent_dim,
            cfg.sample_shape,
            m.num_classes,
            m.g_width,
            tanh_output=not cfg.data.is_toy,
            norm=m.g_norm,
        )
    return DCGANGenerator(m.latent_dim, m.channels, cfg.data.resolution, m.num_classes, m.g_width)


def build_discriminator(cfg: ExperimentConfig) -> nn.Module:
    m = cfg.model
    if m.arch == "mlp":
        return MLPDiscriminator(cfg.sample_shape, m.num_classes, m.d_width, m.d_norm, m.d_dropout, m.pack)
    return DCGANDiscriminator(
        m.channels, cfg.data.resolution, m.num_classes, m.d_width, m.d_norm, m.d_dropout
    )
