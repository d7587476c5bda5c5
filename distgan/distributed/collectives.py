"""Collectives the backends and the trainer share: averaging buffers, summing a small tensor."""

from __future__ import annotations

from contextlib import contextmanager

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


class LazyBufferAverage:
    """Average BatchNorm running statistics only where something reads them, not every step.

    Why that is the same result: a training-mode BatchNorm forward normalises with the BATCH
    statistics and only writes its running stats, `rm <- (1 - m) * rm + m * batch_stat` (mean and
    unbiased variance alike; momentum=None uses m = 1 / num_batches_tracked, equal on all ranks).
    The update is affine with the same m on every rank, so the average over ranks commutes with
    it: the average of the ranks' own running stats after N steps equals what averaging after
    every step gives (up to float rounding), and training itself never reads them.

    Readers (sample grids, evaluation, checkpoints, the end) run inside `averaged()`. Afterwards
    every rank gets its OWN running stats back, so where a run happened to read (a preemption
    checkpoint, say) never changes what it computes later: a resumed run continues bitwise, given
    each rank's own stats, which `averaged()` hands to the checkpoint (`rank_buffers`).
    """

    def __init__(self, modules: dict[str, torch.nn.Module], average) -> None:
        self._modules = modules  # {"g": generator, "d": critic}: whose buffers
        self._average = average  # the collective (backend.sync_buffers)
        self.collectives = 0

    def _buffers(self) -> dict[str, torch.Tensor]:
        return {
            f"{prefix}.{name}": buffer
            for prefix, module in self._modules.items()
            for name, buffer in module.named_buffers()
            if buffer.is_floating_point()
        }

    @contextmanager
    def averaged(self, keep: bool = False):
        """Collective: EVERY rank enters, before any rank reads the buffers. Yields this rank's own
        buffers (for the checkpoint); restores them on exit unless `keep` (the end of training)."""
        own = {name: buffer.detach().clone() for name, buffer in self._buffers().items()}
        self._average()
        self.collectives += 1
        try:
            yield own
        finally:
            if not keep:
                self.restore(own)

    @torch.no_grad()
    def restore(self, own: dict[str, torch.Tensor]) -> None:
        """This rank's own running stats back into the modules (after a read, or at resume)."""
        buffers = self._buffers()
        for name, value in own.items():
            buffers[name].copy_(value.to(buffers[name].dtype))
