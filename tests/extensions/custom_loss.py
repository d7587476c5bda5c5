"""A new adversarial loss in one file: least squares (LSGAN, Mao et al. 2017), registered as `least_squares`."""

from __future__ import annotations

import torch

from distgan.objectives import AdversarialLoss
from distgan.registry import LOSSES

NAME = "least_squares"
CALLS = {"discriminator": 0, "generator": 0}


def least_squares_d(d_real: torch.Tensor, d_fake: torch.Tensor, objective) -> torch.Tensor:
    CALLS["discriminator"] += 1
    return 0.5 * (d_real - 1).pow(2).mean() + 0.5 * d_fake.pow(2).mean()


def least_squares_g(d_fake: torch.Tensor) -> torch.Tensor:
    CALLS["generator"] += 1
    return 0.5 * (d_fake - 1).pow(2).mean()


LOSSES.register(NAME, AdversarialLoss(least_squares_d, least_squares_g))
