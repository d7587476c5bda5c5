"""DeepSpeedBackend: ZeRO-1/2 as two raw engines (G and D), with `backend.Backend`'s interface.

Why raw `deepspeed.initialize` and not accelerate's DeepSpeed plugin (FACTS.md): accelerate's
DeepSpeed path misreports the world size on CPU, while raw engines on top of the process group
that `build_accelerator` already formed (gloo on CPU, NCCL on GPU) train correctly. This is the
one code path on CPU and GPU, so the CPU equivalence test covers what GPUs run.

Rules kept here (each one is a trap in FACTS.md):
- training forwards go through the engines; the penalty's input gradients and the G step's
  frozen D use `engine.module` (the engine's post-backward hooks break `autograd.grad`);
- one `engine.backward` per update, then `engine.step` (which also zeroes the gradients);
- bf16: the modules keep fp32 weights and their forward runs under autocast (as accelerate does
  for DDP), so the penalty's unwrapped forward, the EMA and the exported weights see the same
  precision as under DDP. fp16: DeepSpeed's own fp16 section (the only loss scaling ZeRO has).
- a checkpoint of another number of processes: DeepSpeed refuses its optimizer partitions, so
  they are joined and re-split here (`_load_resplit_optimizer`, with DeepSpeed's elastic restore).
This module does not decide when to save or what the loop does; it wraps, steps and saves.
"""

from __future__ import annotations

import copy
import logging
import os
from datetime import timedelta
from functools import wraps
from pathlib import Path

import torch
from torch import nn

from distgan.config import ExperimentConfig
from distgan.distributed.backend import Backend, build_optimizer, convert_batchnorm
from distgan.distributed.deepspeed_json import deepspeed_config
from distgan.distributed.rng_state import load_rng_state, resized_seed, save_rng_state, seed_everything
from distgan.distributed.safe_load import deepspeed_safe_globals, safe_torch_load
from distgan.errors import CheckpointError

ENGINE_TAGS = {"g": "generator", "d": "discriminator"}  # sub-directories of a checkpoint's state/


def _cast_floating_inputs(dtype: torch.dtype):
    """forward pre-hook: floating inputs to `dtype` (fp16 engines hold fp16 weights)."""

    def hook(module, args, kwargs):
        cast = [a.to(dtype) if torch.is_tensor(a) and a.is_floating_point() else a for a in args]
        return tuple(cast), kwargs

    return hook


def _autocast_forward(module: nn.Module, device_type: str) -> None:
    """Run `module.forward` under bf16 autocast, for engine and unwrapped calls alike."""
    forward = module.forward

    @wraps(forward)
    def autocast_forward(*args, **kwargs):
        with torch.autocast(device_type=device_type, dtype=torch.bfloat16):
            return forward(*args, **kwargs)

    module.forward = autocast_forward


class DeepSpeedBackend(Backend):
    """G and D as two DeepSpeed engines over the Accelerator's process group."""

    writes_weights = True  # the engines' checkpoints hold the (partitioned) module states

    def __init__(self, accelerator, cfg: ExperimentConfig, generator: nn.Module, discriminator: nn.Module):
        import deepspeed

        logging.getLogger("DeepSpeed").setLevel(logging.WARNING)  # per-step info lines otherwise
        if accelerator.device.type == "cpu":
            # On CPU DeepSpeed would JIT-compile a shared-memory C++ op at init (minutes, needs a
            # compiler) that only its inference all-reduce uses; training goes through torch.distributed.
            deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
        self.accelerator = accelerator
        self.grad_clip = cfg.optim.grad_clip
        self.precision = cfg.train.mixed_precision
        self.seed = cfg.train.seed  # the RNG after a resume on another number of processes
        _join_world_of_one(accelerator)
        _data_parallel_group_with_timeout(cfg.distributed.timeout_s)
        generator, discriminator = convert_batchnorm(cfg, generator, discriminator)
        config = deepspeed_config(cfg, accelerator.num_processes)
        engines = {}
        for name, model, settings in (("g", generator, cfg.optim.g), ("d", discriminator, cfg.optim.d)):
            model = model.to(accelerator.device)
            if self.precision == "bf16":
                _autocast_forward(model, accelerator.device.type)
            optimizer = build_optimizer(model.parameters(), settings, cfg.optim.implementation)
            engine, *_ = deepspeed.initialize(
                model=model, optimizer=optimizer, config=copy.deepcopy(config), dist_init_required=False
            )
            if self.precision == "fp16":
                engine.module.register_forward_pre_hook(
                    _cast_floating_inputs(torch.float16), with_kwargs=True
                )
            engines[name] = engine
        self.engines = engines
        self.generator, self.discriminator = engines["g"], engines["d"]
        self.optimizers = {name: engine.optimizer for name, engine in engines.items()}

    @property
    def generator_module(self) -> nn.Module:
        return self.engines["g"].module

    @property
    def discriminator_module(self) -> nn.Module:
        return self.engines["d"].module

    def loss_scale(self) -> torch.Tensor | None:
        """D's fp16 loss scale (the penalty's AMP recipe); None without loss scaling."""
        if self.precision != "fp16":
            return None
        value = float(self.engines["d"].optimizer.cur_scale)  # DeepSpeed keeps it as a Python float
        if getattr(self, "_scale", (None, None))[0] != value:  # a new device tensor only when it changes
            self._scale = (value, torch.tensor(value, device=self.accelerator.device))
        return self._scale[1]

    def update(self, name: str, loss: torch.Tensor, first: bool = True, last: bool = True) -> dict:
        """ONE engine.backward, then engine.step (clipping, ZeRO reduction, fp16 overflow skip).

        Accumulation is DeepSpeed's own (gradient_accumulation_steps = train.grad_accum): the engine
        divides each micro-batch loss by it and steps only at its boundary, which it counts itself.
        """
        engine = self.engines[name]
        if engine.is_gradient_accumulation_boundary() != last:  # its micro-batch count and ours agree
            raise RuntimeError(f"DeepSpeed's accumulation boundary of {name} is out of step with the loop")
        skipped_before = engine.skipped_steps
        engine.backward(loss)
        engine.step()
        if not last:
            return {}
        out = {}
        if self.grad_clip > 0:
            norm = engine.get_global_grad_norm()  # a Python float: ZeRO synced it to clip
            out[f"{name}_grad_norm"] = torch.tensor(float(norm if norm is not None else float("nan")))
        if self.precision == "fp16":
            out[f"{name}_skipped_steps"] = torch.tensor(float(engine.skipped_steps - skipped_before))
        return out

    def save_state(self, directory: Path) -> None:
        """Collective. DeepSpeed's own checkpoint per engine + this rank's RNG state."""
        directory.mkdir(parents=True, exist_ok=True)
        for name, engine in self.engines.items():
            engine.save_checkpoint(str(directory), tag=ENGINE_TAGS[name], save_latest=False)
        save_rng_state(directory, self.accelerator.process_index)

    def load_state(self, directory: Path, resized_at: int | None = None) -> None:
        """Each engine's module, counters and optimizer partition. From a checkpoint of another
        number of processes (`resized_at`: its step), the saved partitions are joined and split
        again for this world (`_load_resplit_optimizer`) and the RNG is re-derived per rank."""
        for name, engine in self.engines.items():
            _load_without_code_execution(engine)
            path, _ = engine.load_checkpoint(
                str(directory),
                tag=ENGINE_TAGS[name],
                load_optimizer_states=resized_at is None,  # DeepSpeed refuses another world size
                load_lr_scheduler_states=False,
            )
            if path is None:
                raise CheckpointError(
                    f"{directory / ENGINE_TAGS[name]}: no DeepSpeed checkpoint to resume from"
                )
            if resized_at is not None:
                _load_resplit_optimizer(engine, directory, ENGINE_TAGS[name])
        if resized_at is None:
            load_rng_state(directory, self.accelerator.process_index)
        else:
            seed_everything(resized_seed(self.seed, self.accelerator.process_index, resized_at))


def _load_resplit_optimizer(engine, directory: Path, tag: str) -> None:
    """ZeRO-1/2 on a new number of processes. Every saved rank holds one slice of each flat
    parameter group (fp32 master weights without padding, and the optimizer state, padded on the
    last rank). Joined in rank order they are the whole group; DeepSpeed's own elastic restore then
    cuts this rank's slice for the current world. The saved files are read through the same
    weights-only loader as a normal resume."""
    from deepspeed.checkpoint.constants import (
        BASE_OPTIMIZER_STATE,
        BASE_OPTIMIZER_STATE_STEP,
        GROUP_PADDINGS,
        OPTIMIZER_STATE_DICT,
        SINGLE_PARTITION_OF_FP32_GROUPS,
    )

    saved = [
        engine.checkpoint_engine.load(name, map_location="cpu")[OPTIMIZER_STATE_DICT]
        for name in _partition_files(engine, directory, tag)
    ]
    optimizer = engine.optimizer
    groups = len(optimizer.optimizer.param_groups)
    elastic = []
    for rank_state in saved:
        base = rank_state[BASE_OPTIMIZER_STATE]
        if isinstance(base, dict):  # one torch optimizer state per rank: strip the last rank's padding
            paddings = rank_state[GROUP_PADDINGS]
            base = [
                {
                    key: value[: value.numel() - paddings[i]]
                    if torch.is_tensor(value) and value.dim()
                    else value
                    for key, value in base["state"][i].items()
                }
                for i in range(groups)
            ]
        elastic.append(
            {
                BASE_OPTIMIZER_STATE: base,
                BASE_OPTIMIZER_STATE_STEP: rank_state.get(BASE_OPTIMIZER_STATE_STEP),
                SINGLE_PARTITION_OF_FP32_GROUPS: rank_state[SINGLE_PARTITION_OF_FP32_GROUPS],
            }
        )
    had_group_step = "step" in optimizer.optimizer.param_groups[0]
    optimizer._load_global_state(saved[0])  # loss scaler, clipping: the same on every rank
    optimizer._restore_elastic_base_optimizer_state(elastic)
    optimizer._restore_from_elastic_fp32_weights(elastic)
    for i, group in enumerate(optimizer.optimizer.param_groups):  # per-group scalars (Adam's step)
        state = optimizer.optimizer.state[group["params"][0]]  # as saved: DeepSpeed pads them to 1-D
        for key, value in elastic[0][BASE_OPTIMIZER_STATE][i].items():
            if torch.is_tensor(value) and value.dim() == 0:
                state[key] = value.clone().to(state[key].device)
    if not had_group_step and elastic[0][BASE_OPTIMIZER_STATE_STEP] is None:
        for group in optimizer.optimizer.param_groups:  # torch's Adam keeps its step per state
            group.pop("step", None)


def _partition_files(engine, directory: Path, tag: str) -> list[str]:
    """Every saved rank's ZeRO optimizer file (the world that wrote them is in the model states)."""
    for bf16 in (engine.bfloat16_enabled(), not engine.bfloat16_enabled()):  # as DeepSpeed looks
        names = engine._get_all_zero_checkpoint_names(str(directory), tag, bf16)
        if names and all(os.path.isfile(name) for name in names):
            return names
    raise CheckpointError(f"{directory / tag}: the ZeRO optimizer partitions of its processes are missing")


def _load_without_code_execution(engine) -> None:
    """Route every file DeepSpeed reads at resume (model states, ZeRO optimizer partitions) through
    `weights_only=True` with DeepSpeed's few plain-data types allowed: its own engine unpickles with
    weights_only=False, which runs whatever a tampered checkpoint file asks for."""
    allowed = deepspeed_safe_globals()

    def load(path, map_location=None):
        return safe_torch_load(path, map_location=map_location, allowed=allowed)

    engine.checkpoint_engine.load = load


def _join_world_of_one(accelerator) -> None:
    """DeepSpeed needs a process group even for one process: make one without any network."""
    if accelerator.num_processes == 1 and not torch.distributed.is_initialized():
        os.environ.setdefault("LOCAL_RANK", "0")  # DeepSpeed asserts it is set (by a launcher)
        backend = "nccl" if accelerator.device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(
            backend, store=torch.distributed.HashStore(), rank=0, world_size=1
        )


def _data_parallel_group_with_timeout(timeout_s: int) -> None:
    """ZeRO reduces over DeepSpeed's clone of the world group, which `new_group` would create with
    torch's default timeout (30 min on gloo), not distributed.timeout_s: a hung rank would stall the
    job for half an hour. Create the clone first, with our timeout (DeepSpeed reuses it)."""
    from deepspeed.utils import groups

    if groups._WORLD_GROUP is None:
        world = torch.distributed.get_world_size()
        groups._WORLD_GROUP = torch.distributed.new_group(
            ranks=list(range(world)), timeout=timedelta(seconds=timeout_s)
        )
