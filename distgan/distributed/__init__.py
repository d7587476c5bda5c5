"""distgan.distributed: everything that knows about processes, devices and wrapping.

    world.py           World, the Accelerator, launcher checks and settings, num_machines, StopRequest
    collectives.py     average_buffers, sum_over_ranks, LazyBufferAverage
    backend.py         the Backend interface, build_optimizer, SyncBatchNorm conversion
    ddp.py             AccelerateBackend (one process / DDP)
    zero.py            DeepSpeedBackend (ZeRO-1/2)
    deepspeed_json.py  the DeepSpeed JSON (derived keys, user JSON, conflicts)
    lost_contact.py    a peer that died or went silent: one line naming it and the last checkpoint

Nothing below the trainer knows the world size except this package; models, objectives and
metrics never import it.
"""

from __future__ import annotations

import torch
from torch import nn

from distgan.config import ExperimentConfig
from distgan.distributed.backend import Backend
from distgan.distributed.collectives import LazyBufferAverage, average_buffers, sum_over_ranks
from distgan.distributed.ddp import AccelerateBackend
from distgan.distributed.lost_contact import report_lost_contact
from distgan.distributed.world import (
    DistributedError,
    StopRequest,
    World,
    any_rank,
    build_accelerator,
    check_world,
    complete_from_launcher,
    launched_world_size,
    launcher_overrides,
    num_machines,
)
from distgan.distributed.zero import DeepSpeedBackend

__all__ = [
    "Backend",
    "DistributedError",
    "StopRequest",
    "World",
    "any_rank",
    "LazyBufferAverage",
    "average_buffers",
    "build_accelerator",
    "build_backend",
    "check_world",
    "complete_from_launcher",
    "launched_world_size",
    "launcher_overrides",
    "num_machines",
    "report_lost_contact",
    "sum_over_ranks",
]


def build_backend(
    accelerator, cfg: ExperimentConfig, generator: nn.Module, discriminator: nn.Module
) -> Backend:
    """Wrap G and D for distributed.backend, with the train.channels_last / train.compile options."""
    if cfg.train.channels_last:  # converts 4-D weights only: a no-op for MLPs
        generator = generator.to(memory_format=torch.channels_last)
        discriminator = discriminator.to(memory_format=torch.channels_last)
    kind = DeepSpeedBackend if cfg.distributed.backend == "deepspeed" else AccelerateBackend
    backend = kind(accelerator, cfg, generator, discriminator)
    if cfg.train.compile:
        backend.compile()
    return backend
