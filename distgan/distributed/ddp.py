"""AccelerateBackend: one process or DDP (CPU gloo / GPU NCCL) through `accelerator.prepare`,
with accelerate's mixed precision. The interface is `backend.Backend`'s."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn

from distgan.config import ExperimentConfig
from distgan.distributed.backend import Backend, build_optimizer, convert_batchnorm
from distgan.distributed.compression import register_comm_hook
from distgan.distributed.rng_state import resized_seed, seed_everything
from distgan.distributed.safe_load import check_accelerate_state


def _inner(model: nn.Module) -> nn.Module:
    """The module inside DDP's (or DataParallel's) wrapper; the model itself when unwrapped."""
    while isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    return model


class AccelerateBackend(Backend):
    """Single process or DDP through `accelerator.prepare` (FACTS.md: keep the prepare order)."""

    def __init__(self, accelerator, cfg: ExperimentConfig, generator: nn.Module, discriminator: nn.Module):
        self.accelerator = accelerator
        self.grad_clip = cfg.optim.grad_clip
        self.grad_accum = cfg.train.grad_accum
        self.seed = cfg.train.seed  # the RNG after a resume on another number of processes
        generator, discriminator = convert_batchnorm(cfg, generator, discriminator)
        opt_g = build_optimizer(generator.parameters(), cfg.optim.g, cfg.optim.implementation)
        opt_d = build_optimizer(discriminator.parameters(), cfg.optim.d, cfg.optim.implementation)
        # prepare order = checkpoint file order (model, model_1, optimizer, optimizer_1): keep it.
        self.generator, self.discriminator, opt_g, opt_d = accelerator.prepare(
            generator, discriminator, opt_g, opt_d
        )
        self.optimizers = {"g": opt_g, "d": opt_d}
        self.models = {"g": self.generator, "d": self.discriminator}
        for model in self.models.values():
            register_comm_hook(model, cfg.distributed)
        # accelerate's documented state hooks: leave the models out of save_state/load_state.
        accelerator.register_save_state_pre_hook(lambda models, weights, directory: weights.clear())
        accelerator.register_load_state_pre_hook(lambda models, directory: models.clear())
        # The plain modules are the ones handed to prepare (it moves them in place and wraps them in
        # DDP). Kept here, not asked of accelerate's unwrap_model: that re-reads package metadata on
        # every call (~2 ms) and imports deepspeed whenever it is installed. Keeping them also means
        # a later torch.compile of self.generator/self.discriminator never reaches the penalty's
        # double backward (unsupported by compile) nor the checkpoint keys (no `_orig_mod.` prefix).
        self._plain = {"g": _inner(self.generator), "d": _inner(self.discriminator)}
        if self._plain["g"] is not generator or self._plain["d"] is not discriminator:
            raise RuntimeError("accelerator.prepare replaced a model instead of wrapping it")  # a bug

    @property
    def generator_module(self) -> nn.Module:
        return self._plain["g"]

    @property
    def discriminator_module(self) -> nn.Module:
        return self._plain["d"]

    def loss_scale(self) -> torch.Tensor | None:
        """fp16 GradScaler scale as the DEVICE tensor the scaler keeps (for the penalty's AMP
        recipe); None without loss scaling. `scaler.get_scale()` would `.item()` it: a host sync on
        every D step. Before the first scaled loss the scaler has no tensor yet: its initial value."""
        scaler = self.accelerator.scaler
        if scaler is None:
            return None
        scale = scaler._get_scale_async()
        return (
            scale if scale is not None else torch.tensor(scaler.get_scale(), device=self.accelerator.device)
        )

    def accumulating(self, name: str, last: bool):
        """DDP's no_sync on all but the last micro-batch: one all-reduce per optimizer step."""
        return nullcontext() if last else self.accelerator.no_sync(self.models[name])

    def update(self, name: str, loss: torch.Tensor, first: bool = True, last: bool = True) -> dict:
        """zero_grad (first micro-batch), ONE backward, then on the last micro-batch optional
        clipping and the optimizer step ('g' or 'd')."""
        optimizer = self.optimizers[name]
        if first:
            optimizer.zero_grad(set_to_none=True)
        self.accelerator.backward(loss / self.grad_accum if self.grad_accum > 1 else loss)
        if not last:
            return {}
        out = {}
        if self.grad_clip > 0:
            norm = self.accelerator.clip_grad_norm_(self.models[name].parameters(), self.grad_clip)
            out[f"{name}_grad_norm"] = norm
        scale_before = self._scale_copy()
        optimizer.step()
        if scale_before is not None:  # fp16: a skipped step (inf/NaN grads) is counted, on the device:
            # the scaler lowers its scale exactly when it skips (fused and plain optimizers alike)
            out[f"{name}_skipped_steps"] = (self.accelerator.scaler._get_scale_async() < scale_before).float()
        return out

    def _scale_copy(self) -> torch.Tensor | None:
        """The scale before a step (the scaler updates its tensor in place); None without fp16."""
        scaler = self.accelerator.scaler
        scale = scaler._get_scale_async() if scaler is not None else None
        return scale.clone() if scale is not None else None

    def save_state(self, directory: Path) -> None:
        """Optimizers, scaler and RNG per rank, in accelerate's format. Not G and D: the checkpoint
        writes their weights once, as the contract's generator/discriminator.safetensors, and a
        resume reads them from there (`writes_weights` is False)."""
        self.accelerator.save_state(str(directory))

    def load_state(self, directory: Path, resized_at: int | None = None) -> None:
        """Optimizers and scaler are the same on every DDP rank (optimizer.bin is written once), so
        they load on any number of processes; the RNG files are per rank."""
        rank = self.accelerator.process_index
        # refuse, never skip; on another world size the RNG file checked is one that exists
        check_accelerate_state(directory, rank if resized_at is None else 0)
        self.accelerator.load_state(str(directory))
        if resized_at is not None:  # a saved rank's RNG (or none, for a new rank): re-derived instead
            seed_everything(resized_seed(self.seed, rank, resized_at))
