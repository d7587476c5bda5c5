"""Adaptive discriminator augmentation (Karras et al. 2020): the rule that moves p.

Every `augment.interval` G steps the trainer turns the tally of r_t = E[sign(D(real))] over
those steps (all processes: ONE all-reduce, in the trainer) into a new p:
    p <- clip(p + sign(r_t - target) * images / speed_images, 0, 1)
so p can go from 0 to 1 in `augment.speed_images` real images. p itself lives in the
checkpointed TrainState; the tally of the unfinished interval is per-process checkpoint state.
Pure torch: nothing here talks to other processes.
"""

from __future__ import annotations

import math

import torch


def adjusted_p(p: float, r_t: float, target: float, images: int, speed_images: int) -> float:
    """The ADA update of p after `images` real images with overfitting measure r_t."""
    step = math.copysign(1.0, r_t - target) if r_t != target else 0.0
    return min(1.0, max(0.0, p + step * images / speed_images))


class RealSignTally:
    """Device-side sums since the last adjustment: [sum of per-step mean sign(D(real)), D steps].

    `add` never syncs; the trainer all-reduces `totals` at adjustment steps (a host sync then).
    float32 round-trips exactly through JSON, so a resumed run continues the very same sums.
    """

    def __init__(self, device) -> None:
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.totals = torch.zeros(2, dtype=torch.float32, device=self.device)

    def add(self, mean_sign: torch.Tensor) -> None:
        self.totals[0] += mean_sign.detach().to(self.totals.dtype)
        self.totals[1] += 1

    def state_dict(self) -> dict:
        """JSON-ready (a host sync: checkpoint steps only)."""
        sign_sum, steps = self.totals.tolist()
        return {"sign_sum": sign_sum, "steps": steps}

    def load_state_dict(self, state: dict) -> None:
        self.totals = torch.tensor(
            [state["sign_sum"], state["steps"]], dtype=self.totals.dtype, device=self.device
        )
