"""Numerical faults: notice non-finite values without a host sync per step, then stop or roll back.

Every step ORs "some loss was not finite" into one device flag (no sync). The flag, and at
checkpoint time the weights, the EMA and the optimizer state, are looked at on every rank
together only where the loop syncs anyway: log steps, before every checkpoint, at the end.
A checkpoint is written only when everything is finite, so the last checkpoint is always good.

`train.on_nonfinite=rollback` then restores the last checkpoint on every rank, multiplies both
learning rates by `train.rollback_lr_factor`, draws new latent noise (the data position is the
checkpoint's) and logs the event; after `train.max_rollbacks` it gives up (exit 3).
"""

from __future__ import annotations

import torch

from distgan.checkpoint import Checkpointer
from distgan.config import TrainConfig
from distgan.distributed import Backend, any_rank
from distgan.train_state import TrainState, noise_seed


class Diverged(Exception):
    """Non-finite values that the run cannot recover from; the message says what to change."""


def _finite(tensors) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors if torch.is_tensor(t) and t.is_floating_point())


def finite_state(backend: Backend, ema) -> bool:
    """Weights and buffers of G, D and the EMA, and every optimizer state tensor, are finite."""
    modules = [backend.generator_module, backend.discriminator_module] + (
        [ema.model] if ema is not None else []
    )
    if not all(_finite([*m.parameters(), *m.buffers()]) for m in modules):
        return False
    for optimizer in backend.optimizers.values():
        inner = getattr(optimizer, "optimizer", optimizer)  # accelerate / DeepSpeed wrap the torch one
        for per_param in getattr(inner, "state", {}).values():
            if isinstance(per_param, dict) and not _finite(per_param.values()):
                return False
    return True


class NonFiniteGuard:
    def __init__(self, device: torch.device) -> None:
        self.flag = torch.zeros((), dtype=torch.bool, device=device)

    def watch(self, losses: dict[str, torch.Tensor]) -> None:
        """On the device, no sync: remember whether the step's loss was not finite."""
        self.flag |= ~torch.isfinite(losses["loss"].detach()).all()

    def tripped(self, accelerator, backend: Backend, ema, check_state: bool) -> bool:
        """True on every rank if any rank saw a non-finite loss since the last look (or, with
        `check_state`, holds non-finite weights/optimizer state). A host sync and one all-reduce."""
        local = bool(self.flag.item()) or (check_state and not finite_state(backend, ema))
        self.flag.zero_()
        return any_rank(accelerator, local)


def roll_back(train: TrainConfig, state: TrainState, checkpointer: Checkpointer, rank: int) -> None:
    """Continue from the last good checkpoint with smaller learning rates (`state` and every
    checkpointed part restored in place; the loop sets the learning rates), or raise Diverged."""
    where = f"non-finite loss or weights at or before step {state.step}"
    if train.on_nonfinite == "stop":
        raise Diverged(
            f"{where}; train.on_nonfinite=stop. Lower optim.*.lr or use train.on_nonfinite=rollback"
        )
    if state.rollbacks >= train.max_rollbacks:
        raise Diverged(
            f"{where} after {state.rollbacks} rollbacks (train.max_rollbacks={train.max_rollbacks}); "
            f"the checkpoints on disk are all finite. Lower optim.*.lr, or raise train.max_rollbacks"
        )
    good = checkpointer.latest()
    if good is None:
        raise Diverged(
            f"{where}, before the first checkpoint: nothing to roll back to. Lower optim.*.lr, or set "
            f"checkpoint.every so there is a checkpoint to return to"
        )
    lr_scale, rollbacks = state.lr_scale * train.rollback_lr_factor, state.rollbacks + 1
    checkpointer.restore(good)
    state.lr_scale, state.rollbacks = lr_scale, rollbacks
    # New noise: the restored RNG would replay the very steps that diverged.
    torch.manual_seed(noise_seed(train.seed, rank, rollbacks))
