"""The Backend interface every way of wrapping G and D implements, and what the backends share.

The phases call `generate`, `discriminate` (wrapped forwards that train), `penalty_discriminator`,
`penalty_generator` and `frozen_discriminator()` (the plain D for input gradients and for the G step,
the plain G for path-length regularization); the rest of the package reads `generator_module`, `discriminator_module` (plain modules: sampling, EMA, export,
checkpoints), and calls `optimizers`, `loss_scale()`, `update(name, loss, first, last)`,
`accumulating(name, last)` (gradient accumulation: forward and backward of one micro-batch),
`sync_buffers()`, `save_state(dir)`, `load_state(dir)`. `ddp.AccelerateBackend` (one process or
DDP through accelerate) and `zero.DeepSpeedBackend` (two ZeRO engines) subclass `Backend`.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
from torch import nn

from distgan.config import AdamConfig, ExperimentConfig
from distgan.distributed.collectives import average_buffers


def build_optimizer(params, settings: AdamConfig, implementation: str) -> torch.optim.Optimizer:
    """AdamW with the configured kernel (foreach / fused / plain for loops / torch's default), over
    the parameters that train (train.freeze_d's frozen blocks are left out)."""
    kernel = {"foreach": {"foreach": True}, "fused": {"fused": True}, "plain": {"foreach": False}}
    return torch.optim.AdamW(
        [p for p in params if p.requires_grad],
        lr=settings.lr,
        betas=(settings.beta1, settings.beta2),
        weight_decay=settings.weight_decay,
        **kernel.get(implementation, {}),
    )


def convert_batchnorm(cfg: ExperimentConfig, *modules: nn.Module) -> tuple[nn.Module, ...]:
    """SyncBatchNorm when distributed.sync_batchnorm is on (GPU only: checked at start-up)."""
    if not cfg.distributed.sync_batchnorm:
        return modules
    return tuple(nn.SyncBatchNorm.convert_sync_batchnorm(module) for module in modules)


class Backend:
    """What the trainer relies on; subclasses set generator/discriminator/optimizers in __init__."""

    generator: nn.Module  # wrapped: training forwards of G go through it
    discriminator: nn.Module  # wrapped: training forwards of D go through it
    optimizers: dict[str, torch.optim.Optimizer]  # {"g": ..., "d": ...}
    # save_state/load_state include G's and D's weights (DeepSpeed engines); otherwise the
    # checkpoint's generator/discriminator.safetensors are the only copy, written and read there
    writes_weights: bool = False

    @property
    def generator_module(self) -> nn.Module:
        raise NotImplementedError

    @property
    def discriminator_module(self) -> nn.Module:
        raise NotImplementedError

    # The phases (step.py) call these; which handle (wrapped or plain) serves which purpose is
    # decided here, once, and nowhere else.
    def generate(self, latent: torch.Tensor, labels: torch.Tensor | None, **options) -> torch.Tensor:
        """G's training forward (wrapped: DDP/DeepSpeed see it); `options`: the family's own
        forward arguments (stylegan2: given style-mixing and noise draws)."""
        return self.generator(latent, labels, **options)

    def discriminate(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """D's training forward (wrapped), for the D step's one backward."""
        return self.discriminator(images, labels)

    @property
    def penalty_discriminator(self) -> nn.Module:
        """The plain D, for the penalty's input gradients: no DDP/DeepSpeed hooks on that forward;
        its parameter gradients still join the D step's one backward."""
        return self.discriminator_module

    @property
    def penalty_generator(self) -> nn.Module:
        """The plain G, for the path-length penalty's gradient w.r.t. its w's (DeepSpeed's engine
        breaks autograd.grad); its parameter gradients join the G step's one backward, after the
        wrapped forward of G main."""
        return self.generator_module

    @contextmanager
    def frozen_discriminator(self):
        """The plain D with its parameters frozen, for the G step: neither DDP nor DeepSpeed
        computes or all-reduces D's gradients there. Blocks frozen for good (train.freeze_d) stay frozen."""
        discriminator = self.discriminator_module
        trainable = [p for p in discriminator.parameters() if p.requires_grad]
        discriminator.requires_grad_(False)
        try:
            yield discriminator
        finally:
            for parameter in trainable:
                parameter.requires_grad_(True)

    def loss_scale(self) -> torch.Tensor | None:
        """fp16 loss scale for the penalty's AMP recipe; None without loss scaling."""
        raise NotImplementedError

    def update(self, name: str, loss: torch.Tensor, first: bool = True, last: bool = True) -> dict:
        """ONE backward of `loss`, optional clipping, the optimizer step of 'g' or 'd'.

        With train.grad_accum = M the trainer calls this once per micro-batch with that
        micro-batch's mean loss: `first` zeroes the gradients, `last` clips and steps; the backend
        weights each micro-batch by 1/M so the accumulated gradient is the full batch's.
        """
        raise NotImplementedError

    def accumulating(self, name: str, last: bool):
        """Context for the forward AND backward of one micro-batch of 'g' or 'd': all but the
        last skip the gradient all-reduce (DDP's no_sync must see the forward too)."""
        return nullcontext()

    def save_state(self, directory: Path) -> None:
        raise NotImplementedError

    def load_state(self, directory: Path, resized_at: int | None = None) -> None:
        """`resized_at`: the checkpoint's step when it was written by another number of processes;
        then the state is loaded for this world and every process's RNG is seeded from the run's
        seed, that step and its rank (`rng_state.resized_seed`) instead of a saved rank's state."""
        raise NotImplementedError

    def learning_rates(self) -> dict[str, float]:
        """Current lr of each optimizer, for the logs."""
        return {f"lr_{name}": opt.param_groups[0]["lr"] for name, opt in self.optimizers.items()}

    def set_learning_rates(self, lrs: dict[str, float]) -> None:
        """lr of every param group of optimizer 'g' / 'd' (after a resume or a rollback)."""
        for name, optimizer in self.optimizers.items():
            for group in optimizer.param_groups:
                group["lr"] = lrs[name]

    def sync_buffers(self) -> None:
        """Average BatchNorm running stats over processes (neither DDP here nor ZeRO syncs them)."""
        average_buffers([self.generator_module, self.discriminator_module])

    def compile(self) -> None:
        """torch.compile the training forwards only: the plain modules stay uncompiled, so the
        penalty's double backward (unsupported by compile) and checkpoint keys are unaffected."""
        self.generator, self.discriminator = torch.compile(self.generator), torch.compile(self.discriminator)
