"""Exponential moving average of the generator's weights (read by sampling and evaluation)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class GeneratorEMA:
    def __init__(self, generator: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(generator).eval().requires_grad_(False)

    def decay_at(self, step: int) -> float:
        """Warm-up: early averages must not keep the random init around for thousands of steps."""
        return min(self.decay, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, generator: nn.Module, step: int) -> None:
        """ema = d * ema + (1 - d) * current after G step `step`; buffers (BatchNorm stats) copied."""
        ema_params = list(self.model.parameters())
        params = [p.detach().to(e.dtype) for p, e in zip(generator.parameters(), ema_params, strict=True)]
        torch._foreach_lerp_(ema_params, params, 1.0 - self.decay_at(step))
        self.copy_buffers(generator)

    @torch.no_grad()
    def copy_buffers(self, generator: nn.Module) -> None:
        """The EMA model holds the generator's current buffers (after they are averaged, too)."""
        for ema_buffer, buffer in zip(self.model.buffers(), generator.buffers(), strict=True):
            ema_buffer.copy_(buffer)
