"""World setup: how this process joins the world, what the launcher asked for, and stop agreement.

Builds the Accelerator from the config and the launcher's environment, and refuses the
silent failure modes in FACTS.md: N processes that each think they are alone (CPU + --multi_gpu
without ACCELERATE_USE_CPU), fp16 on CPU, DeepSpeed without the package. The launcher's own
settings complete the config as overrides (`launcher_overrides`): nothing here edits a config.
`StopRequest` turns SIGUSR1/SIGTERM/SIGINT on any rank into one agreed stop; `any_rank` agrees
on a flag.

Multi-node: the socket interface gloo/NCCL use is the launcher environment's GLOO_SOCKET_IFNAME /
NCCL_SOCKET_IFNAME (FACTS.md: without it gloo binds to 127.0.0.1 and the nodes never connect).
A dead or hung rank makes every other rank's next collective fail after distributed.timeout_s.
"""

from __future__ import annotations

import math
import os
import signal
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch

from distgan.config import ConfigError, ExperimentConfig, override
from distgan.distributed.collectives import sum_over_ranks
from distgan.distributed.deepspeed_json import deepspeed_config
from distgan.distributed.launcher import deepspeed_overrides, default_overrides, dynamo_overrides
from distgan.distributed.restarted_group import join_restarted_group
from distgan.errors import UserError

STOP_SIGNALS = (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT)
# Consumed by launcher.deepspeed_overrides / dynamo_overrides; hidden while the Accelerator is built.
LAUNCHER_PLUGIN_VARS = ("ACCELERATE_USE_DEEPSPEED", "ACCELERATE_DYNAMO_BACKEND")


class DistributedError(UserError, RuntimeError):
    """The processes cannot form the world the launcher asked for."""


@dataclass(frozen=True)
class World:
    """This process's place in the run, handed to components instead of the Accelerator."""

    rank: int
    size: int
    device: torch.device
    is_main: bool
    gather: Callable[[torch.Tensor], torch.Tensor]  # every rank's tensor, concatenated (a collective)

    @classmethod
    def of(cls, accelerator) -> World:
        return cls(
            accelerator.process_index,
            accelerator.num_processes,
            accelerator.device,
            accelerator.is_main_process,
            accelerator.gather,
        )

    @staticmethod
    def sum(values: torch.Tensor) -> torch.Tensor:
        """`values` summed over every rank, in place: ONE all-reduce (a collective)."""
        return sum_over_ranks(values)


def env_count(name: str, default: int, least: int = 1) -> int:
    """An integer the launcher exported (WORLD_SIZE, LOCAL_WORLD_SIZE, RANK), or a DistributedError
    naming the variable: a hand-set value must not end as a ValueError or a division by zero."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < least:
        raise DistributedError(
            f"environment variable {name}={raw[:40]!r}: must be an integer >= {least} (accelerate launch and "
            f"torchrun set it; unset it when starting with plain python)"
        )
    return value


def launched_world_size() -> int:
    """WORLD_SIZE set by accelerate launch / torchrun (1 when started with plain python); checks
    LOCAL_WORLD_SIZE too, which later steps read."""
    world = env_count("WORLD_SIZE", 1)
    env_count("LOCAL_WORLD_SIZE", 1)
    return world


def launcher_overrides(cfg: ExperimentConfig) -> list[str]:
    """Overrides that make the config agree with what accelerate launch asked for.

    Mixed precision: `accelerate launch --config_file accelerate_config.yaml` (bf16) or
    `--mixed_precision bf16` exports ACCELERATE_MIXED_PRECISION; the Accelerator built from the
    config would silently override it. A config that says 'no' adopts the launcher's choice (and the
    run directory's config.yaml records it); two different non-'no' choices are a ConfigError.
    Distributed type (DeepSpeed, FSDP, accumulation, ...): `launcher.deepspeed_overrides`; the
    launcher's torch.compile request (`--dynamo_backend inductor`): `launcher.dynamo_overrides`.
    """
    launcher = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    ours = cfg.train.mixed_precision
    distributed = deepspeed_overrides(cfg) + dynamo_overrides(cfg)
    if launcher in ("no", ours):
        return distributed
    if ours == "no" and launcher in ("bf16", "fp16"):
        return [f"train.mixed_precision={launcher}", *distributed]
    raise ConfigError(
        f"train.mixed_precision: the config says {ours!r} but accelerate launch asks for {launcher!r} "
        f"(its config file or --mixed_precision); make them agree, e.g. train.mixed_precision={launcher}"
    )


def complete_from_launcher(cfg: ExperimentConfig) -> ExperimentConfig:
    """`cfg` with the launcher's settings applied, then the `auto` fields it left open made concrete
    (a new validated config; `cfg` is unchanged)."""
    world = launched_world_size()
    cfg = override(cfg, launcher_overrides(cfg), world_size=world)
    return override(cfg, default_overrides(cfg), world_size=world)


def check_backend_available(cfg: ExperimentConfig) -> None:
    """Fail fast, before any process group or model exists."""
    precision = cfg.train.mixed_precision
    if precision == "fp16" and not torch.cuda.is_available():
        raise ConfigError(
            "train.mixed_precision: fp16 needs a CUDA GPU (on CPU it would silently run in fp32); "
            "valid on this machine: 'no' or 'bf16'"
        )
    if cfg.distributed.comm_hook == "bf16" and not torch.cuda.is_available():
        raise ConfigError(
            "distributed.comm_hook: bf16 compression needs NCCL (CUDA GPUs); on CPU (gloo) valid: "
            "none, fp16 or powersgd"
        )
    if cfg.distributed.backend == "deepspeed":
        try:
            import deepspeed  # noqa: F401
        except ImportError:
            raise ConfigError(
                "distributed.backend: 'deepspeed' needs the deepspeed package: "
                "pip install 'distgan[deepspeed]'; or use distributed.backend=ddp"
            ) from None
    if cfg.distributed.comm_hook == "bf16" and not torch.cuda.is_available():
        raise ConfigError(
            "distributed.comm_hook: bf16 compression needs NCCL (CUDA GPUs); on CPU (gloo) valid: "
            "none, fp16 or powersgd"
        )
    if cfg.distributed.backend == "deepspeed":
        # a bad or contradicting JSON fails here, before any compute
        deepspeed_config(cfg, world_size=launched_world_size())
    if cfg.distributed.sync_batchnorm and not torch.cuda.is_available():
        raise ConfigError(
            "distributed.sync_batchnorm: SyncBatchNorm only works on GPU modules; set it to false on CPU"
        )


def build_accelerator(cfg: ExperimentConfig, log_with: list[str] = (), project_dir=None):
    """One Accelerator per process; on a machine without CUDA every process joins a gloo world.

    `cfg` must already carry the launcher's settings (`launcher_overrides`). `log_with` /
    `project_dir`: accelerate's trackers and their logging directory (distgan.tracking.log_with)."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, InitProcessGroupKwargs

    if launcher_overrides(cfg):
        raise ValueError("build_accelerator: apply launcher_overrides(cfg) first")  # a caller's bug
    check_backend_available(cfg)
    on_cpu = not torch.cuda.is_available()
    if not on_cpu:
        check_gpus_per_machine(env_count("LOCAL_WORLD_SIZE", 1), torch.cuda.device_count())
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
    join_restarted_group(cfg.distributed.timeout_s)  # before accelerate forms the default group
    with _launcher_plugins_taken_over():
        accelerator = Accelerator(
            cpu=on_cpu,  # without this, CPU processes under --multi_gpu become separate worlds of 1
            mixed_precision=cfg.train.mixed_precision,
            kwargs_handlers=handlers,
            log_with=list(log_with) or None,
            project_dir=None if project_dir is None else str(project_dir),
        )
    check_world(accelerator)
    return accelerator


@contextmanager
def _launcher_plugins_taken_over():
    """Hide the launcher's DeepSpeed switch while the Accelerator is built: the request is already in
    the config (distributed.backend=deepspeed), and distgan's DeepSpeed backend builds raw engines over
    a plain process group (zero.py). Seen, accelerate would build its own DeepSpeed plugin and process
    group (FACTS.md: on CPU with a wrong world size), a different path from --multi_gpu's. The dynamo
    backend likewise: distgan compiles (train.compile) itself; accelerate would compile again in
    prepare(), penalty included."""
    saved = {name: os.environ.pop(name) for name in LAUNCHER_PLUGIN_VARS if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def check_world(accelerator) -> None:
    """Refuse N launched processes that each see a world of their own (FACTS.md, CPU --multi_gpu)."""
    expected = launched_world_size()
    if accelerator.num_processes != expected:
        raise DistributedError(
            f"the launcher started {expected} processes (WORLD_SIZE) but this process sees a world of "
            f"{accelerator.num_processes}: the work would run as independent copies. On CPU launch with "
            f"ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N"
        )


def check_gpus_per_machine(local_processes: int, gpus: int) -> None:
    """More processes on a machine than GPUs would put two ranks on one GPU (NCCL refuses, or an
    'invalid device ordinal' deep in accelerate): refuse it first, in words."""
    if gpus and local_processes > gpus:
        raise DistributedError(
            f"the launcher started {local_processes} processes on this machine but {gpus} GPU(s) are "
            f"visible: one process per GPU; launch with --num_processes {gpus} per machine (or make "
            f"more GPUs visible with CUDA_VISIBLE_DEVICES)"
        )


def num_machines(world_size: int) -> int:
    """Machines in the world: torchrun / accelerate launch export LOCAL_WORLD_SIZE per machine."""
    return max(1, world_size // env_count("LOCAL_WORLD_SIZE", world_size))


def _alone() -> bool:
    """No other process to agree with (no process group, or a world of one)."""
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1


def check_interval(step_s: float, cost_s: float, check_s: float) -> int:
    """Check points between two stop all-reduces: the fewest that keep the check's cost under
    STOP_CHECK_BUDGET of the time, but never more than `check_s` seconds' worth."""
    step_s = max(step_s, 1e-9)
    cheap_enough = math.ceil(cost_s / (STOP_CHECK_BUDGET * step_s))
    prompt_enough = max(1, int(check_s / step_s))
    return max(1, min(cheap_enough, prompt_enough))


def any_rank(accelerator, flag: bool) -> bool:
    """True on every rank when `flag` is True on any rank (one all-reduce; a host sync)."""
    if _alone():
        return flag
    value = torch.tensor([float(flag)], device=accelerator.device)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value.item())


STOP_CHECK_BUDGET = 0.005  # the stop-flag all-reduce may cost at most this fraction of the steps


class StopRequest:
    """SIGUSR1/SIGTERM/SIGINT on any rank -> one agreed stop; a 2nd SIGINT aborts at once.

    `poll()` is called after every D step of a critic phase and `agreed()` after every G step;
    both count as one check point. One process reads its own flag (free). Several processes agree
    with one all-reduce every K check points, never on the points in between (no collective the
    math does not need). K is re-agreed at each all-reduce from values that travel in it (the MAX
    over ranks, so every rank computes the same K and the ranks' collectives stay matched):
    - the slowest rank's seconds per check point, so that K points last at most
      distributed.stop_check_s: a signal is honoured within about that long;
    - what the previous check cost (all-reduce plus the host sync that reads it), so that K is the
      smallest count that keeps checking under STOP_CHECK_BUDGET of the time: a signal is honoured
      as soon as that budget allows, usually within a few steps.
    """

    def __init__(self, accelerator, check_s: float) -> None:
        self.accelerator, self.check_s = accelerator, check_s
        self.signal_name: str | None = None
        self.every, self._since, self._last, self._cost = 1, 0, time.perf_counter(), 0.0
        self.collectives = 0  # all-reduces done so far (tests and the benchmark read it)
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        if signum == signal.SIGINT and self.signal_name is not None:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    def poll(self) -> bool:
        """True on every rank once any rank got a signal; a collective only every `every` calls."""
        if _alone():
            return self.signal_name is not None
        self._since += 1
        if self._since < self.every:
            return False
        began = time.perf_counter()
        seconds_per_poll = (began - self._last) / self._since
        agreed = torch.tensor(
            [float(self.signal_name is not None), seconds_per_poll, self._cost],
            device=self.accelerator.device,
        )
        torch.distributed.all_reduce(agreed, op=torch.distributed.ReduceOp.MAX)
        stop, step_s, cost_s = agreed.tolist()  # host sync, deliberate: once every `every` points
        self.collectives += 1
        self.every = check_interval(step_s, cost_s, self.check_s)  # the same on every rank
        self._since, self._last = 0, time.perf_counter()
        self._cost = self._last - began
        return stop > 0

    def agreed(self) -> bool:
        """The check after a G step: the same throttled agreement as `poll()`."""
        return self.poll()

    def restore(self) -> None:
        """After the final checkpoint a late duplicate signal (Slurm and the launcher both forward
        SIGUSR1) must not kill the process mid-exit; otherwise give back the default handlers."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN if self.signal_name else signal.SIG_DFL)
