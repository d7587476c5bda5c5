"""Gradient compression for DDP's all-reduce: torch's communication hooks, one per network.

`distributed.comm_hook`: fp16 / bf16 halve the bytes each gradient all-reduce sends (the sum is
formed in that precision, then cast back); powersgd sends a rank-`powersgd_rank` approximation
of each gradient matrix with error feedback (Vogels et al. 2019), after `powersgd_warmup` plain
all-reduces. G and D each get their own hook state. The hooks act only where DDP all-reduces:
the penalty's input gradients never pass through them, and with train.grad_accum only the last
micro-batch's backward communicates. A resume starts the PowerSGD state afresh (its error
feedback is not checkpointed): the run continues validly but not bitwise.
"""

from __future__ import annotations

from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks, powerSGD_hook

from distgan.config import DistributedConfig


def register_comm_hook(model: nn.Module, settings: DistributedConfig) -> None:
    """Register `settings.comm_hook` on `model` if it is DDP-wrapped (one process: nothing to send)."""
    if settings.comm_hook == "none" or not isinstance(model, nn.parallel.DistributedDataParallel):
        return
    if settings.comm_hook == "powersgd":
        state = powerSGD_hook.PowerSGDState(
            process_group=None,
            matrix_approximation_rank=settings.powersgd_rank,
            start_powerSGD_iter=settings.powersgd_warmup,
            min_compression_rate=0,  # compress every matrix, also small ones: the setting is explicit
            use_error_feedback=True,
            warm_start=True,
            orthogonalization_epsilon=1e-8,  # a zero gradient matrix must not become 0 / 0 = NaN
        )
        model.register_comm_hook(state, powerSGD_hook.powerSGD_hook)
        return
    hook = {"fp16": default_hooks.fp16_compress_hook, "bf16": default_hooks.bf16_compress_hook}
    model.register_comm_hook(None, hook[settings.comm_hook])
