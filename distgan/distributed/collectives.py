"""Collectives the backends share: averaging floating-point buffers over all processes."""

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


class LazyBufferAverage:
    """Average BatchNorm running statistics only before something reads them, not every step.

    Why that is the same result: a training-mode BatchNorm forward normalises with the BATCH
    statistics and only writes its running stats, `rm <- (1 - m) * rm + m * batch_stat` (mean and
    unbiased variance alike; momentum=None uses m = 1 / num_batches_tracked, equal on all ranks).
    The update is affine with the same m on every rank, so the average over ranks commutes with
    it: averaging once after N steps gives exactly what averaging after every step gives (up to
    float rounding), and training itself never reads the running stats. Readers: sample grids and
    evaluation (eval-mode forwards), checkpoints, the EMA copy, the end of training.
    `stale` changes identically on every rank, so the collective stays matched across ranks.
    """

    def __init__(self, average) -> None:
        self._average = average  # the collective (backend.sync_buffers)
        self.stale = False
        self.collectives = 0

    def touched(self) -> None:
        """A training step ran: the local running stats moved away from the others'."""
        self.stale = True

    def before_read(self) -> bool:
        """Collective when stale: call on EVERY rank before any rank reads the buffers. True when it
        averaged (the caller then refreshes copies of the buffers, e.g. the EMA's)."""
        if not self.stale:
            return False
        self._average()
        self.stale, self.collectives = False, self.collectives + 1
        return True
