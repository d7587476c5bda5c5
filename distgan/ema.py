"""Exponential moving average of the generator's weights (read by sampling and evaluation).

Two schedules: a decay per G step (`train.ema_decay`, with a warm-up), or a half-life in real
images seen (`train.ema_images`, StyleGAN2): beta = 0.5 ** (images this step / half-life), the
half-life ramped up as `ema_rampup` x images seen so far. Counted in GLOBAL images, the average
does not depend on how many processes share a batch.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from distgan.config import TrainConfig


class GeneratorEMA:
    @classmethod
    def of(cls, train: TrainConfig, generator: nn.Module) -> GeneratorEMA | None:
        """The configured average of `generator`, or None when train.ema_enabled is off."""
        if not train.ema_enabled:
            return None
        return cls(generator, train.ema_decay, train.ema_images, train.ema_rampup)

    def __init__(
        self, generator: nn.Module, decay: float = 0.0, half_life_images: float = 0.0, rampup: float = 0.0
    ) -> None:
        self.decay, self.half_life_images, self.rampup = decay, half_life_images, rampup
        self.model = copy.deepcopy(generator).eval().requires_grad_(False)

    def decay_at(self, step: int, images_seen: int = 0, images: int = 0) -> float:
        """beta after G step `step`, which brought `images` real images on top of `images_seen`."""
        if self.half_life_images:
            half_life = self.half_life_images
            if self.rampup:
                half_life = min(half_life, images_seen * self.rampup)
            return 0.5 ** (images / max(half_life, 1e-8))
        # Warm-up: early averages must not keep the random init around for thousands of steps.
        return min(self.decay, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, generator: nn.Module, step: int, images_seen: int = 0, images: int = 0) -> None:
        """ema = d * ema + (1 - d) * current after G step `step`; buffers (BatchNorm stats) copied.
        `images_seen`: global real images before this step; `images`: those of this step."""
        ema_params = list(self.model.parameters())
        params = [p.detach().to(e.dtype) for p, e in zip(generator.parameters(), ema_params, strict=True)]
        beta = self.decay_at(step, images_seen, images)
        torch._foreach_lerp_(ema_params, params, 1.0 - beta)
        self.copy_buffers(generator)

    @torch.no_grad()
    def copy_buffers(self, generator: nn.Module) -> None:
        """The EMA model holds the generator's current buffers (after they are averaged, too)."""
        for ema_buffer, buffer in zip(self.model.buffers(), generator.buffers(), strict=True):
            ema_buffer.copy_(buffer)
