"""How G and D are wrapped, stepped and saved: one class per backend, same interface.

The trainer only calls: `generator`, `discriminator` (wrapped, for forwards that train),
`generator_module`, `critic_module` (unwrapped: the penalty's input gradients, the frozen D of the
G step, sampling, export), `loss_scale()`, `update(name, loss)`, `save_state(dir)`,
`load_state(dir)`. AccelerateBackend covers one process and DDP (CPU gloo / GPU NCCL) with
accelerate's mixed precision; a DeepSpeed backend implements the same methods.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from distgan.config import AdamConfig, ExperimentConfig
from distgan.distributed import average_buffers


def build_optimizer(params, settings: AdamConfig, implementation: str) -> torch.optim.Optimizer:
    """AdamW with the configured kernel (foreach / fused / plain for loops / torch's default)."""
    kernel = {"foreach": {"foreach": True}, "fused": {"fused": True}, "plain": {"foreach": False}}
    return torch.optim.AdamW(
        params,
        lr=settings.lr,
        betas=(settings.beta1, settings.beta2),
        weight_decay=settings.weight_decay,
        **kernel.get(implementation, {}),
    )


class AccelerateBackend:
    """Single process or DDP through `accelerator.prepare` (FACTS.md: keep the prepare order)."""

    def __init__(self, accelerator, cfg: ExperimentConfig, generator: nn.Module, discriminator: nn.Module):
        self.accelerator = accelerator
        self.grad_clip = cfg.optim.grad_clip
        if cfg.distributed.sync_batchnorm:
            generator = nn.SyncBatchNorm.convert_sync_batchnorm(generator)
            discriminator = nn.SyncBatchNorm.convert_sync_batchnorm(discriminator)
        opt_g = build_optimizer(generator.parameters(), cfg.optim.g, cfg.optim.implementation)
        opt_d = build_optimizer(discriminator.parameters(), cfg.optim.d, cfg.optim.implementation)
        # prepare order = checkpoint file order (model, model_1, optimizer, optimizer_1): keep it.
        self.generator, self.discriminator, opt_g, opt_d = accelerator.prepare(
            generator, discriminator, opt_g, opt_d
        )
        self.optimizers = {"g": opt_g, "d": opt_d}
        self.models = {"g": self.generator, "d": self.discriminator}
        # Unwrap ONCE: accelerate's unwrap_model re-reads package metadata on every call (~2 ms, on
        # the hot path 4-5 times per iteration), and keeping the plain modules means a later
        # torch.compile of self.generator/self.discriminator never reaches the penalty's double
        # backward (unsupported by compile) nor the checkpoint keys (no `_orig_mod.` prefix).
        self._plain = {
            "g": accelerator.unwrap_model(self.generator),
            "d": accelerator.unwrap_model(self.discriminator),
        }

    @property
    def generator_module(self) -> nn.Module:
        return self._plain["g"]

    @property
    def critic_module(self) -> nn.Module:
        return self._plain["d"]

    def loss_scale(self) -> torch.Tensor | None:
        """fp16 GradScaler scale (for the penalty's AMP recipe); None without loss scaling."""
        scaler = self.accelerator.scaler
        return scaler.get_scale() if scaler is not None else None

    def update(self, name: str, loss: torch.Tensor) -> dict[str, torch.Tensor]:
        """zero_grad, ONE backward, optional clipping, optimizer step ('g' or 'd')."""
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        self.accelerator.backward(loss)
        out = {}
        if self.grad_clip > 0:
            norm = self.accelerator.clip_grad_norm_(self.models[name].parameters(), self.grad_clip)
            out[f"{name}_grad_norm"] = norm
        optimizer.step()
        if self.accelerator.scaler is not None:  # fp16: a skipped step (inf/NaN grads) is counted
            out[f"{name}_skipped_steps"] = torch.tensor(float(optimizer.step_was_skipped))
        return out

    def sync_buffers(self) -> None:
        """Average BatchNorm running stats over processes (DDP's per-forward broadcast is off)."""
        average_buffers([self.generator_module, self.critic_module])

    def save_state(self, directory: Path) -> None:
        self.accelerator.save_state(str(directory))

    def load_state(self, directory: Path) -> None:
        self.accelerator.load_state(str(directory))


def build_backend(accelerator, cfg: ExperimentConfig, generator: nn.Module, discriminator: nn.Module):
    if cfg.distributed.backend == "deepspeed":
        from distgan.deepspeed_backend import DeepSpeedBackend

        return DeepSpeedBackend(accelerator, cfg, generator, discriminator)
    return AccelerateBackend(accelerator, cfg, generator, discriminator)
