"""Load a trained generator without the trainer: `load_generator(path)` (DESIGN.md Python API)."""

from __future__ import annotations

from pathlib import Path

import yaml

from distgan.checkpoint import EMA_WEIGHTS, load_weights, resolve_checkpoint
from distgan.config import ExperimentConfig, config_from_dict
from distgan.models import Generator, build_generator


def load_run_config(path: str | Path) -> ExperimentConfig:
    """The resolved config stored in a checkpoint (path: run dir or checkpoint dir)."""
    checkpoint = resolve_checkpoint(path)
    return config_from_dict(yaml.safe_load((checkpoint / "config.yaml").read_text()))


def load_generator(path: str | Path, ema: bool = True, device: str = "cpu") -> Generator:
    """Generator in eval mode, with EMA weights when the checkpoint has them (and ema=True).

    path: a run directory (its latest checkpoint) or one checkpoint directory.
    """
    checkpoint = resolve_checkpoint(path)
    cfg = load_run_config(checkpoint)
    generator = build_generator(cfg)
    weights = checkpoint / f"{EMA_WEIGHTS}.safetensors"
    if not (ema and weights.is_file()):
        weights = checkpoint / "generator.safetensors"
    load_weights(generator, weights)
    return generator.to(device).eval()
