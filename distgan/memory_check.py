"""Will the run fit? A start-up check: estimate a run's memory from the config, refuse what cannot fit.

The models are built on the `meta` device (shapes only: nothing is allocated), so parameter counts
are exact for any architecture; one forward on meta tensors gives the activation sizes. The
estimate is a LOWER bound (weights, gradients, Adam state sharded as ZeRO shards it, EMA, the
activations a step keeps for backward), so a refused config could never have run. Processes on
one host share its RAM (LOCAL_WORLD_SIZE). Runs before any data is read or model is built."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from distgan.config import ConfigError, ExperimentConfig, override
from distgan.models import build_discriminator, build_generator
from distgan.models.spectral import normalised_values, spectral_norm_targets

# Keys that make a run large, tried in this order when naming the culprit.
SIZE_KEYS = ("model.g_width", "model.d_width", "model.channel_base", "model.channel_max", "model.latent_dim",
             "model.num_classes", "data.resolution", "data.batch_size")  # fmt: skip
GIB = 2**30


@dataclass(frozen=True)
class Footprint:
    generator_params: int
    discriminator_params: int
    activations: int  # values kept for backward in the larger of the D step and the G step
    bytes: int  # per process


def _activation_count(model: nn.Module, *inputs: torch.Tensor) -> int:
    """Values in every leaf module's output for one forward on meta tensors (inputs included)."""
    total = [sum(t.numel() for t in inputs if t is not None)]

    def count(_module, _inputs, output) -> None:
        if isinstance(output, torch.Tensor):
            total[0] += output.numel()

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return total[0]


def estimate(cfg: ExperimentConfig, world_size: int) -> Footprint:
    """Memory one training process needs at least, from the config alone (nothing is allocated)."""
    batch = cfg.local_batch(world_size)
    # Spectral norm keeps the parameter counts; on meta its init-time power iteration costs seconds
    # (python reference kernels), so the shapes are taken without it and its one extra tensor per
    # normalised weight and forward (the divided weight, kept for backward) is added below.
    plain = override(cfg, ["model.spectral_norm=none"], world_size)
    with torch.device("meta"):
        generator = build_generator(plain.model, plain.sample_shape)
        discriminator = build_discriminator(plain.model, plain.sample_shape)
        latent = torch.empty(batch, cfg.model.latent_dim)
        labels = torch.zeros(batch, dtype=torch.long) if cfg.model.num_classes else None
        labels2 = torch.zeros(2 * batch, dtype=torch.long) if cfg.model.num_classes else None
        sample = torch.empty(batch, *cfg.sample_shape)
        d_step = _activation_count(discriminator, torch.empty(2 * batch, *cfg.sample_shape), labels2)
        g_step = _activation_count(generator, latent, labels) + _activation_count(
            discriminator, sample, labels
        )
    g_params = sum(p.numel() for p in generator.parameters())
    d_params = sum(p.numel() for p in discriminator.parameters())
    # fp32 weights; gradients and Adam's two moments, sharded over processes by DeepSpeed ZeRO.
    shard = world_size if cfg.distributed.backend == "deepspeed" else 1
    grad_shard = shard if cfg.distributed.zero_stage == 2 else 1
    per_param = 4 * (1 + 1 / grad_shard + 2 / shard)
    weights = (g_params + d_params) * per_param + (4 * g_params if cfg.train.ema_enabled else 0)
    normalise_g, normalise_d = spectral_norm_targets(cfg.model.spectral_norm)
    d_divided = normalised_values(discriminator) if normalise_d else 0
    d_step += d_divided
    g_step += d_divided + (normalised_values(generator) if normalise_g else 0)
    activations = max(d_step, g_step)
    bytes_per_value = 2 if cfg.train.mixed_precision != "no" else 4
    return Footprint(g_params, d_params, activations, int(weights + activations * bytes_per_value))


def available_bytes(device: torch.device) -> tuple[int, str]:
    """Free memory this process may use on `device`, and a name for it."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free), f"GPU memory on {device}"
    try:
        with open("/proc/meminfo") as meminfo:
            fields = dict(line.split(":", 1) for line in meminfo)
        free = int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    # Processes on one host share its RAM.
    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return free // local, "host memory" + (f" per process ({local} on this host)" if local > 1 else "")


def _culprit(cfg: ExperimentConfig, world_size: int, size: int) -> str:
    """The size key whose default value shrinks the estimate most (a key the user made large)."""
    defaults = ExperimentConfig()
    best, best_size = "data.batch_size", size
    for key in SIZE_KEYS:
        section, name = key.split(".")
        default = getattr(getattr(defaults, section), name)
        if getattr(getattr(cfg, section), name) == default:
            continue
        try:
            smaller = estimate(override(cfg, [f"{key}={default}"], world_size), world_size).bytes
        except ConfigError:  # the default does not fit the rest of this config
            continue
        if smaller < best_size:
            best, best_size = key, smaller
    return best


def check_fits(cfg: ExperimentConfig, world_size: int, device: torch.device) -> Footprint:
    """Raise ConfigError naming the key to shrink when the run cannot fit in free memory."""
    need = estimate(cfg, world_size)
    free, where = available_bytes(device)
    if need.bytes > free:
        key = _culprit(cfg, world_size, need.bytes)
        section, name = key.split(".")
        raise ConfigError(
            f"{key}={getattr(getattr(cfg, section), name)}: this run needs at least "
            f"{need.bytes / GIB:,.1f} GiB per process (generator {need.generator_params:,} and "
            f"discriminator {need.discriminator_params:,} parameters with gradients and Adam state, "
            f"{need.activations:,} activation values at a local batch of {cfg.local_batch(world_size)}), "
            f"but only {free / GIB:,.1f} GiB of {where} is free; valid: a smaller {key}"
        )
    return need
