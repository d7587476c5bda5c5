"""Load a trained generator without the trainer: `load_generator(path)` (DESIGN.md Python API).

`path` is a run directory, one checkpoint directory, a folder written by `python -m distgan.export`,
or a Hub repo id `owner/name` of such a folder (fetched through huggingface_hub's cache).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from distgan.checkpoint import EMA_WEIGHTS, load_weights, resolve_checkpoint
from distgan.config import ExperimentConfig, config_from_dict
from distgan.hub import CONFIG, WEIGHTS, download, is_export_dir, is_repo_id
from distgan.models import Generator, build_generator


def _read_config(path: Path) -> ExperimentConfig:
    return config_from_dict(yaml.safe_load(path.read_text()))


def load_run_config(path: str | Path) -> ExperimentConfig:
    """The resolved config stored in a checkpoint (path: run dir or checkpoint dir) or an export folder."""
    if is_export_dir(Path(path)):
        return _read_config(Path(path) / CONFIG)
    checkpoint = resolve_checkpoint(path)
    return _read_config(checkpoint / "config.yaml")


def generator_files(path: str | Path, ema: bool = True) -> tuple[ExperimentConfig, Path]:
    """(config, weights file) of whatever `path` names; a Hub id is downloaded (or read from the cache)."""
    if isinstance(path, str) and is_repo_id(path):
        path = download(path)
    path = Path(path)
    if is_export_dir(path):
        return _read_config(path / CONFIG), path / WEIGHTS  # export.py already chose the EMA weights
    checkpoint = resolve_checkpoint(path)
    weights = checkpoint / f"{EMA_WEIGHTS}.safetensors"
    if not (ema and weights.is_file()):
        weights = checkpoint / "generator.safetensors"
    return _read_config(checkpoint / "config.yaml"), weights


def load_generator(path: str | Path, ema: bool = True, device: str = "cpu") -> Generator:
    """Generator in eval mode, with EMA weights when the checkpoint has them (and ema=True).

    path: a run directory (its latest checkpoint), one checkpoint directory, an exported folder,
    or a Hub repo id 'owner/name' (HF_HUB_OFFLINE=1 reads only the local cache).
    """
    cfg, weights = generator_files(path, ema)
    generator = build_generator(cfg.model, cfg.sample_shape)
    load_weights(generator, weights)
    return generator.to(device).eval()
