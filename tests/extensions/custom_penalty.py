"""A new penalty in one file: ProGAN's drift term eps * E[D(real)^2], registered as `drift`."""

from __future__ import annotations

import torch

from distgan.objectives import Penalty, PenaltyInputs
from distgan.registry import PENALTIES

NAME = "drift"
EPSILON = 0.001  # Karras et al. 2018
CALLS = {"term": 0}


def drift(objective, inputs: PenaltyInputs) -> dict[str, torch.Tensor]:
    CALLS["term"] += 1
    mean_square = inputs.discriminator(inputs.real, inputs.labels).float().pow(2).mean()
    return {"loss": EPSILON * mean_square, "drift": mean_square.detach()}


PENALTIES.register(NAME, Penalty(drift))
