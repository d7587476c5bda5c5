"""distgan.models: G and D of the family `model.arch` names, from the model section and the sample shape.

The families register themselves in `distgan.registry.ARCHITECTURES` (mlp.py, dcgan.py,
resnet.py); a new family is one file that does the same. Spectral normalization is applied here,
to whatever network a family builds. Imports torch, the model section and the registry only.
"""

from __future__ import annotations

from torch import nn

from distgan.config import ModelConfig
from distgan.models import dcgan, mlp, resnet, stylegan2  # noqa: F401  (importing a family file registers it)
from distgan.models.base import Generator
from distgan.models.family import Architecture, SampleShape
from distgan.models.spectral import apply_spectral_norm, spectral_norm_targets
from distgan.registry import ARCHITECTURES

__all__ = ["Architecture", "Generator", "build_generator", "build_discriminator"]


def build_generator(model: ModelConfig, shape: SampleShape) -> Generator:
    """G of family `model.arch` for samples of `shape` ((2,) toy points, (C, H, W) images)."""
    generator = ARCHITECTURES.get(model.arch).build_generator(model, tuple(shape))
    if spectral_norm_targets(model.spectral_norm)[0]:
        apply_spectral_norm(generator)
    return generator


def build_discriminator(model: ModelConfig, shape: SampleShape) -> nn.Module:
    """D of family `model.arch` for samples of `shape`: one score per sample (per pack of samples)."""
    discriminator = ARCHITECTURES.get(model.arch).build_discriminator(model, tuple(shape))
    if spectral_norm_targets(model.spectral_norm)[1]:
        apply_spectral_norm(discriminator)
    return discriminator
