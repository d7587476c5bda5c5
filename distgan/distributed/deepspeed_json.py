"""The DeepSpeed JSON of one engine: keys distgan derives, the user's JSON merged over them, conflicts.

Pure dict work (no deepspeed import), so a bad or contradicting JSON fails before any process
group exists (`world.check_backend_available`) and the backend builds its engines from the same
function.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from distgan.config import ConfigError, ExperimentConfig

# Keys distgan derives from its own config; a user JSON may omit them, say "auto" or repeat them.
DERIVED_KEYS = (
    "train_batch_size",
    "train_micro_batch_size_per_gpu",
    "gradient_accumulation_steps",
    "gradient_clipping",
    "zero_optimization.stage",
    "bf16.enabled",
    "fp16.enabled",
)


def _get(config: dict, dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def read_user_json(cfg: ExperimentConfig) -> dict:
    """The optional `distributed.deepspeed_config` JSON; ConfigError naming the file when unusable."""
    path = cfg.distributed.deepspeed_config
    if path is None:
        return {}
    try:
        user = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"distributed.deepspeed_config: cannot read {path} as JSON: {err}") from None
    if not isinstance(user, dict):
        raise ConfigError(f"distributed.deepspeed_config: {path} must hold a JSON object")
    return user


def deepspeed_config(cfg: ExperimentConfig, world_size: int) -> dict:
    """DeepSpeed config for one engine: distgan's settings, the user's JSON merged over them.

    A key distgan derives (batch sizes, ZeRO stage, precision, clipping) that the JSON sets to a
    different value is a ConfigError: two sources of truth would make the run lie about itself.
    """
    precision = cfg.train.mixed_precision
    ours: dict[str, Any] = {
        "train_batch_size": cfg.data.batch_size,
        "train_micro_batch_size_per_gpu": cfg.local_batch(world_size) // cfg.train.grad_accum,
        "gradient_accumulation_steps": cfg.train.grad_accum,  # DeepSpeed's own boundary handling
        "gradient_clipping": cfg.optim.grad_clip,
        "zero_optimization": {"stage": cfg.distributed.zero_stage},
        "zero_allow_untested_optimizer": True,  # distgan's AdamW (same kernel as under DDP)
        "bf16": {"enabled": False},  # bf16 = autocast on fp32 weights (module docstring)
        "fp16": {"enabled": precision == "fp16", "loss_scale": 0, "initial_scale_power": 16},
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }
    user = read_user_json(cfg)
    for key in DERIVED_KEYS:
        theirs = _get(user, key)
        if theirs is not None and theirs != "auto" and theirs != _get(ours, key):
            source = {
                "zero_optimization.stage": "distributed.zero_stage",
                "gradient_clipping": "optim.grad_clip",
                # bf16 is autocast over fp32 weights, never DeepSpeed's bf16 section
                "bf16.enabled": "train.mixed_precision (bf16 runs as autocast, keep this false)",
                "fp16.enabled": "train.mixed_precision",
            }.get(key, "data.batch_size, train.grad_accum and the number of processes")
            raise ConfigError(
                f"distributed.deepspeed_config: {cfg.distributed.deepspeed_config} sets {key}={theirs!r} "
                f"but distgan derives {_get(ours, key)!r} from {source}; remove the key, set it to "
                f'"auto", or change {source}'
            )
    merged = _merge(ours, {k: v for k, v in user.items() if v != "auto"})
    for key in DERIVED_KEYS:  # "auto" (or a repeat) always means distgan's value
        section, _, leaf = key.rpartition(".")
        target = merged[section] if section else merged
        target[leaf] = _get(ours, key)
    return merged
