"""MLP GAN (the Keras blog design): G 128-256-512 + BatchNorm + LeakyReLU(0.2); D 512-256-128.

D can pack (PacGAN, Lin et al. 2018): with pack=m it scores groups of m samples concatenated
along the feature axis, so a batch of N gives N/m scores.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from distgan.config import ModelConfig
from distgan.models.base import Generator, class_embedding, concat_label, init_weights_dcgan
from distgan.models.family import Architecture, SampleShape, layer_groups
from distgan.registry import ARCHITECTURES


class MLPGenerator(Generator):
    def __init__(
        self,
        latent_dim: int,
        sample_shape: tuple[int, ...],
        num_classes: int = 0,
        width: int = 64,
        tanh_output: bool = True,
        norm: str = "batch",
        latent_components: int = 0,
        latent_component_std: float = 1.0,
    ) -> None:
        super().__init__(latent_dim, sample_shape, num_classes, latent_components, latent_component_std)
        self.embed = class_embedding(num_classes, num_classes)
        in_features = latent_dim + (num_classes if num_classes else 0)
        hidden = [2 * width, 4 * width, 8 * width]  # 128-256-512 at width 64
        layers: list[nn.Module] = []
        for features in hidden:
            # BatchNorm's batch statistics jitter every output a little: "none" for precise toy points
            norm_layer = [nn.BatchNorm1d(features)] if norm == "batch" else []
            layers += [nn.Linear(in_features, features), *norm_layer, nn.LeakyReLU(0.2)]
            in_features = features
        layers.append(nn.Linear(in_features, math.prod(sample_shape)))
        if tanh_output:  # images live in [-1, 1]; toy 2D points are unbounded
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)
        init_weights_dcgan(self)

    def forward(self, latent: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        out = self.net(concat_label(self.mixed(latent), self.embed, labels))
        return out.view(latent.shape[0], *self.sample_shape)


class MLPDiscriminator(nn.Module):
    def __init__(
        self,
        sample_shape: tuple[int, ...],
        num_classes: int = 0,
        width: int = 64,
        norm: str = "none",
        dropout: float = 0.0,
        pack: int = 1,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.pack = pack
        self.embed = class_embedding(num_classes, num_classes)
        in_features = pack * (math.prod(sample_shape) + (num_classes if num_classes else 0))
        layers: list[nn.Module] = []
        for features in [8 * width, 4 * width, 2 * width]:  # 512-256-128 at width 64
            layers.append(nn.Linear(in_features, features))
            if norm == "batch":
                layers.append(nn.BatchNorm1d(features))
            elif norm == "layer":
                layers.append(nn.LayerNorm(features))
            layers.append(nn.LeakyReLU(0.2))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            in_features = features
        layers.append(nn.Linear(in_features, 1))
        self.net = nn.Sequential(*layers)
        init_weights_dcgan(self)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        features = concat_label(x.flatten(1), self.embed, labels)
        if self.pack > 1:
            # PacGAN: each group of `pack` consecutive samples becomes one input, so D judges them
            # jointly (one score per group); a batch of pure reals or pure fakes keeps its groups pure.
            if features.shape[0] % self.pack:
                raise ValueError(f"batch {features.shape[0]} is not divisible by model.pack={self.pack}")
            features = features.reshape(features.shape[0] // self.pack, -1)
        return self.net(features).squeeze(1)


def build_generator(model: ModelConfig, shape: SampleShape) -> MLPGenerator:
    return MLPGenerator(
        model.latent_dim,
        shape,
        model.num_classes,
        model.g_width,
        tanh_output=len(shape) == 3,  # images (C, H, W) live in [-1, 1]; toy points are unbounded
        norm=model.g_norm,
        latent_components=model.latent_components,
        latent_component_std=model.latent_component_std,
    )


def build_discriminator(model: ModelConfig, shape: SampleShape) -> MLPDiscriminator:
    return MLPDiscriminator(
        shape, model.num_classes, model.d_width, model.d_norm, model.d_dropout, model.pack
    )


def discriminator_blocks(discriminator: MLPDiscriminator) -> list[nn.Module]:
    """Each hidden layer with its norm, from the input on; the last Linear is the head."""
    return layer_groups(discriminator.net, (nn.Linear,))[:-1]


ARCHITECTURES.register(
    "mlp",
    Architecture(
        build_generator,
        build_discriminator,
        options=frozenset({"pack", "latent_components", "d_norm", "d_dropout"}),
        conditionings=("concat",),
        discriminator_blocks=discriminator_blocks,
    ),
)
