"""Process-group setup: the one place that decides how this process joins the world.

Builds the Accelerator from the config and the launcher's environment, and refuses the
silent failure modes in FACTS.md: N processes that each think they are alone (CPU + --multi_gpu
without ACCELERATE_USE_CPU), fp16 on CPU, DeepSpeed without the package. Also the one
collective the backends share: averaging BatchNorm buffers over processes. Models and
objectives never import this module.

Multi-node: the socket interface gloo/NCCL use is the launcher environment's GLOO_SOCKET_IFNAME /
NCCL_SOCKET_IFNAME (FACTS.md: without it gloo binds to 127.0.0.1 and the nodes never connect).
A dead or hung rank makes every other rank's next collective fail after distributed.timeout_s.
"""

from __future__ import annotations

import os
import warnings
from datetime import timedelta

import torch

from distgan.config import ConfigError, ExperimentConfig


class DistributedError(RuntimeError):
    """The processes cannot form the world the launcher asked for."""


def launched_world_size() -> int:
    """WORLD_SIZE set by accelerate launch / torchrun (1 when started with plain python)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def adopt_launcher_precision(cfg: ExperimentConfig) -> None:
    """Make train.mixed_precision and the launcher's mixed precision agree (may set the former).

    `accelerate launch --config_file accelerate_config.yaml` (bf16) or `--mixed_precision bf16`
    exports ACCELERATE_MIXED_PRECISION; the Accelerator built from the config would silently
    override it. A config that says 'no' adopts the launcher's choice (and the run directory's
    config.yaml records it); two different non-'no' choices are a ConfigError.
    """
    launcher = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    ours = cfg.train.mixed_precision
    if launcher in ("no", ours):
        return
    if ours == "no" and launcher in ("bf16", "fp16"):
        cfg.train.mixed_precision = launcher
        return
    raise ConfigError(
        f"train.mixed_precision: the config says {ours!r} but accelerate launch asks for {launcher!r} "
        f"(its config file or --mixed_precision); make them agree, e.g. train.mixed_precision={launcher}"
    )


def check_backend_available(cfg: ExperimentConfig) -> None:
    """Fail fast, before any process group or model exists."""
    precision = cfg.train.mixed_precision
    if precision == "fp16" and not torch.cuda.is_available():
        raise ConfigError(
            "train.mixed_precision: fp16 needs a CUDA GPU (on CPU it would silently run in fp32); "
            "valid on this machine: 'no' or 'bf16'"
        )
    if cfg.distributed.backend == "deepspeed":
        try:
            import deepspeed  # noqa: F401
        except ImportError:
            raise ConfigError(
                "distributed.backend: 'deepspeed' needs the deepspeed package: "
                "pip install 'distgan[deepspeed]'; or use distributed.backend=ddp"
            ) from None
    if cfg.distributed.backend == "deepspeed":
        from distgan.deepspeed_backend import deepspeed_config

        # a bad or contradicting JSON fails here, before any compute
        deepspeed_config(cfg, world_size=launched_world_size())
    if cfg.distributed.sync_batchnorm and not torch.cuda.is_available():
        raise ConfigError(
            "distributed.sync_batchnorm: SyncBatchNorm only works on GPU modules; set it to false on CPU"
        )


def build_accelerator(cfg: ExperimentConfig):
    """One Accelerator per process; on a machine without CUDA every process joins a gloo world."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, InitProcessGroupKwargs

    adopt_launcher_precision(cfg)
    check_backend_available(cfg)
    on_cpu = not torch.cuda.is_available()
    # torch >= 2.13 renames broadcast_buffers=False to forward_sync_buffers=False, which accelerate's
    # kwargs handler cannot pass yet; the behaviour we ask for is the same.
    warnings.filterwarnings("ignore", message="`broadcast_buffers` is deprecated", category=FutureWarning)
    handlers = [
        InitProcessGroupKwargs(timeout=timedelta(seconds=cfg.distributed.timeout_s)),
        # No unused parameters by construction: D is never run through DDP during the G step.
        # No per-forward buffer broadcast: the loop averages BatchNorm buffers once per iteration
        # (backend.sync_buffers); the broadcast would also risk FACTS.md's in-place error on CUDA.
        DistributedDataParallelKwargs(find_unused_parameters=False, broadcast_buffers=False),
    ]
    accelerator = Accelerator(
        cpu=on_cpu,  # without this, CPU processes under --multi_gpu become separate worlds of 1
        mixed_precision=cfg.train.mixed_precision,
        kwargs_handlers=handlers,
    )
    expected = launched_world_size()
    if accelerator.num_processes != expected:
        raise DistributedError(
            f"the launcher started {expected} processes (WORLD_SIZE) but this process sees a world of "
            f"{accelerator.num_processes}: training would run as independent copies. On CPU launch with "
            f"ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N"
        )
    return accelerator


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
