"""Collectives the backends and the trainer share: averaging buffers, summing a small tensor."""

from __future__ import annotations

import torch


@torch.no_grad()
def average_buffers(modules: list[torch.nn.Module]) -> None:
    """Average floating-point buffers (BatchNorm running stats) over all processes, in place.

    Each process updates running statistics from its own local batch; averaging once per
    iteration makes every rank hold the same buffers (so checkpoints, samples and resumes do not
    depend on which rank saves) and makes running_mean the EMA of the GLOBAL batch mean.
    One all-reduce of one flat tensor: a host-visible collective, call it once per iteration.
    """
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    buffers = [b for module in modules for b in module.buffers() if b.is_floating_point()]
    if not buffers:
        return
    flat = torch.cat([b.detach().float().reshape(-1) for b in buffers])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for b in buffers:
        b.copy_(flat[offset : offset + b.numel()].view_as(b))
        offset += b.numel()


@torch.no_grad()
def sum_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """`values` summed over all processes, in place (ONE all-reduce; unchanged when alone)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(values)
    return values
