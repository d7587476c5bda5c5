"""A new model family in one file: one linear layer each for G and D, registered as `tiny_linear`."""

from __future__ import annotations

import math

import torch
from torch import nn

from distgan.models import Architecture, Generator
from distgan.registry import ARCHITECTURES

NAME = "tiny_linear"
CALLS = {"generator": 0, "discriminator": 0}  # forwards of each network


class TinyGenerator(Generator):
    def __init__(self, latent_dim: int, shape: tuple[int, ...]) -> None:
        super().__init__(latent_dim, shape, num_classes=0)
        self.net = nn.Linear(latent_dim, math.prod(shape))

    def forward(self, latent: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        CALLS["generator"] += 1
        return self.net(latent).view(latent.shape[0], *self.sample_shape)


class TinyDiscriminator(nn.Module):
    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.net = nn.Linear(math.prod(shape), 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        CALLS["discriminator"] += 1
        return self.net(x.flatten(1)).squeeze(1)


ARCHITECTURES.register(
    NAME,
    Architecture(
        build_generator=lambda model, shape: TinyGenerator(model.latent_dim, shape),
        build_discriminator=lambda model, shape: TinyDiscriminator(shape),
    ),
)
