"""What `accelerate launch` asked for, as distgan config overrides: environment in, overrides out.

`accelerate launch` turns its flags and its config file (`accelerate config`) into environment
variables for every process (FACTS.md): ACCELERATE_USE_DEEPSPEED with ACCELERATE_DEEPSPEED_ZERO_STAGE
/ _CONFIG_FILE for `--use_deepspeed` or `distributed_type: DEEPSPEED`, ACCELERATE_USE_FSDP for FSDP,
ACCELERATE_GRADIENT_ACCUMULATION_STEPS, ... Reading only some of them trains something the user did
not ask for with exit 0, so every one that changes how training is distributed is either adopted
(DeepSpeed: distgan's own DeepSpeed backend with that stage and JSON), checked against the distgan
config (a contradiction names both), or refused (FSDP, Megatron-LM, ZeRO-3, offload, accumulation).
Pure functions of (config, environment): no process group, no Accelerator, no deepspeed import.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from distgan.config import ConfigError, ExperimentConfig
from distgan.distributed.deepspeed_json import read_user_json

SUPPORTED = (
    "distgan supports one process, DDP (accelerate launch --multi_gpu, or distributed_type: MULTI_GPU / "
    "MULTI_CPU in the accelerate config) and DeepSpeed ZeRO-1/2 (--use_deepspeed --zero_stage 1|2, or "
    "distributed_type: DEEPSPEED)"
)
# Launcher switches for distributed types distgan has no backend for: variable -> what the user asked for.
UNSUPPORTED_TYPES = {
    "ACCELERATE_USE_FSDP": "FSDP (--use_fsdp or distributed_type: FSDP)",
    "ACCELERATE_USE_MEGATRON_LM": "Megatron-LM (--use_megatron_lm or distributed_type: MEGATRON_LM)",
    "ACCELERATE_USE_PARALLELISM_CONFIG": "a parallelism config (tensor/context/sequence parallel)",
    "ACCELERATE_USE_SAGEMAKER": "SageMaker data parallelism",
}
STAGES = (1, 2)  # what distgan's DeepSpeed backend implements
DEFAULT_STAGE = 2


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "false").strip().lower() in ("true", "1", "yes")


def _unset(value: str | None) -> bool:
    """accelerate writes 'none' / 'false' / 'auto' for settings a config file leaves at their default."""
    return value is None or value.strip().lower() in ("", "none", "false", "auto")


def refuse_unsupported(env: Mapping[str, str]) -> None:
    """ConfigError for a distributed type or setting distgan would otherwise silently ignore."""
    for name, what in UNSUPPORTED_TYPES.items():
        if _flag(env, name):
            raise ConfigError(
                f"accelerate launch asks for {what}, which distgan cannot run ({name}=true); {SUPPORTED}"
            )
    steps = env.get("ACCELERATE_GRADIENT_ACCUMULATION_STEPS")
    if not _unset(steps) and not steps.strip().isdigit():
        raise ConfigError(
            f"ACCELERATE_GRADIENT_ACCUMULATION_STEPS={steps[:40]!r}: expected a whole number of steps "
            f"(--gradient_accumulation_steps); distgan accumulates with train.grad_accum instead"
        )
    if not _unset(steps) and steps.strip() != "1":
        raise ConfigError(
            f"accelerate launch asks for gradient accumulation over {steps} steps "
            f"(--gradient_accumulation_steps or gradient_accumulation_steps in the accelerate config); "
            f"accelerate's accumulation does not know a GAN's D and G phases: remove it from the launcher "
            f"and set train.grad_accum={steps.strip()} in the distgan config (it splits data.batch_size, the "
            f"global batch, into micro-batches; multiply data.batch_size by {steps.strip()} to keep "
            f"accelerate's meaning)"
        )


def _launcher_stage(env: Mapping[str, str]) -> int | None:
    raw = env.get("ACCELERATE_DEEPSPEED_ZERO_STAGE")
    if _unset(raw):
        return None
    try:
        stage = int(raw)
    except ValueError:
        raise ConfigError(
            f"ACCELERATE_DEEPSPEED_ZERO_STAGE: expected a ZeRO stage number, got {raw!r}"
        ) from None
    if stage not in STAGES:
        raise ConfigError(
            f"accelerate launch asks for ZeRO stage {stage} (--zero_stage or zero_stage in the accelerate "
            f"config); distgan's DeepSpeed backend supports stages {' and '.join(map(str, STAGES))}"
        )
    return stage


def _refuse_deepspeed_extras(cfg: ExperimentConfig, env: Mapping[str, str]) -> None:
    """DeepSpeed launcher settings distgan's backend does not implement, or owns under another key."""
    for kind in ("OPTIMIZER", "PARAM"):
        device = env.get(f"ACCELERATE_DEEPSPEED_OFFLOAD_{kind}_DEVICE")
        if not _unset(device):
            raise ConfigError(
                f"accelerate launch asks for ZeRO {kind.lower()} offload to {device} "
                f"(offload_{kind.lower()}_device); distgan's DeepSpeed backend keeps everything on the "
                f"device: set it to none"
            )
    if _flag(env, "ACCELERATE_DEEPSPEED_ZERO3_INIT"):
        raise ConfigError(
            "accelerate launch asks for zero3_init_flag=true; distgan's DeepSpeed backend supports ZeRO "
            "stages 1 and 2 only: set it to false"
        )
    clip = env.get("ACCELERATE_GRADIENT_CLIPPING")
    if not _unset(clip):
        try:
            value = float(clip)
        except ValueError:
            raise ConfigError(f"ACCELERATE_GRADIENT_CLIPPING: expected a number, got {clip!r}") from None
        if value != cfg.optim.grad_clip:
            raise ConfigError(
                f"optim.grad_clip: the config says {cfg.optim.grad_clip:g} but accelerate launch asks for "
                f"gradient clipping {value:g} (--gradient_clipping or gradient_clipping in the accelerate "
                f"config); set optim.grad_clip={value:g} in the distgan config and remove it from the launcher"
            )


def deepspeed_overrides(cfg: ExperimentConfig, env: Mapping[str, str] | None = None) -> list[str]:
    """Overrides that select distgan's DeepSpeed backend the way the launcher asked (none if it did not).

    A distgan config that says otherwise (backend ddp, another ZeRO stage, another DeepSpeed JSON)
    is a ConfigError naming both sides; `auto` / null fields adopt the launcher's choice.
    """
    env = os.environ if env is None else env
    refuse_unsupported(env)
    if not _flag(env, "ACCELERATE_USE_DEEPSPEED"):
        return []
    dist = cfg.distributed
    if dist.backend == "ddp":
        raise ConfigError(
            "distributed.backend: the config says 'ddp' but accelerate launch asks for DeepSpeed "
            "(--use_deepspeed or distributed_type: DEEPSPEED); set distributed.backend to auto or "
            "deepspeed, or launch with --multi_gpu"
        )
    _refuse_deepspeed_extras(cfg, env)
    out = [] if dist.backend == "deepspeed" else ["distributed.backend=deepspeed"]
    stage = _launcher_stage(env)
    if stage is not None and dist.zero_stage is None:
        out.append(f"distributed.zero_stage={stage}")
    elif stage is not None and dist.zero_stage != stage:
        raise ConfigError(
            f"distributed.zero_stage: the config says {dist.zero_stage} but accelerate launch asks for ZeRO "
            f"stage {stage} (--zero_stage or zero_stage in the accelerate config); make them agree, e.g. "
            f"distributed.zero_stage={stage}"
        )
    file = env.get("ACCELERATE_DEEPSPEED_CONFIG_FILE")
    if not _unset(file):
        ours = dist.deepspeed_config
        if ours is None:
            out.append(f"distributed.deepspeed_config={file}")
        elif Path(ours).resolve() != Path(file).resolve():
            raise ConfigError(
                f"distributed.deepspeed_config: the config says {ours} but accelerate launch asks for {file} "
                f"(--deepspeed_config_file or deepspeed_config_file in the accelerate config); give one of them"
            )
    return out


def dynamo_overrides(cfg: ExperimentConfig, env: Mapping[str, str] | None = None) -> list[str]:
    """`--dynamo_backend inductor` (or `dynamo_config` in the accelerate config) is distgan's
    `train.compile=true`: distgan compiles G and D itself and keeps the gradient penalty's double
    backward uncompiled, which accelerate's own compile in prepare() would not. Other backends and
    non-default dynamo options are refused rather than dropped."""
    env = os.environ if env is None else env
    backend = env.get("ACCELERATE_DYNAMO_BACKEND", "no").strip().lower()
    if backend in ("", "no", "none"):
        return []
    if backend != "inductor":
        raise ConfigError(
            f"accelerate launch asks for torch.compile with the {backend!r} dynamo backend "
            f"(--dynamo_backend or dynamo_config in the accelerate config); distgan compiles with "
            f"inductor only: use --dynamo_backend inductor, or train.compile=true in the distgan config"
        )
    mode = env.get("ACCELERATE_DYNAMO_MODE", "default").strip().lower()
    if mode not in ("", "default", "none"):
        raise ConfigError(
            f"accelerate launch asks for dynamo mode {mode!r} (--dynamo_mode); distgan compiles with "
            f"torch.compile's default mode: remove --dynamo_mode"
        )
    return [] if cfg.train.compile else ["train.compile=true"]


def default_overrides(cfg: ExperimentConfig) -> list[str]:
    """Overrides that turn the `auto` / null fields the launcher left open into concrete values, so that
    config.yaml and meta.json say what ran: backend ddp; ZeRO stage from the DeepSpeed JSON, else 2."""
    dist, out = cfg.distributed, []
    if dist.backend == "auto":
        out.append("distributed.backend=ddp")
    if dist.zero_stage is None:
        stage = DEFAULT_STAGE
        if dist.backend == "deepspeed":
            theirs = read_user_json(cfg).get("zero_optimization", {})
            theirs = theirs.get("stage") if isinstance(theirs, dict) else None
            if isinstance(theirs, int) and not isinstance(theirs, bool):
                if theirs not in STAGES:
                    raise ConfigError(
                        f"distributed.deepspeed_config: {dist.deepspeed_config} sets zero_optimization.stage="
                        f"{theirs}; distgan's DeepSpeed backend supports stages 1 and 2"
                    )
                stage = theirs
        out.append(f"distributed.zero_stage={stage}")
    return out
