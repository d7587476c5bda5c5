"""Load a trained generator without the trainer: `load_generator(path)` (DESIGN.md Python API).

`path` is a run directory, one checkpoint directory, a folder written by `python -m distgan.export`,
or a Hub repo id `owner/name` of such a folder (fetched through huggingface_hub's cache).
"""

from __future__ import annotations

from pathlib import Path

from safetensors import SafetensorError, safe_open

from distgan.checkpoint import EMA_WEIGHTS, CheckpointError, load_weights, resolve_checkpoint
from distgan.config import ExperimentConfig
from distgan.config.loading import config_from_file
from distgan.errors import brief
from distgan.hub import CONFIG, WEIGHTS, check_links, download, is_export_dir, is_repo_id
from distgan.models import Generator, build_generator


def _read_config(path: Path) -> ExperimentConfig:
    return config_from_file(path, "the generator's config")


def _export_config(folder: Path) -> ExperimentConfig:
    check_links(folder)
    return _read_config(folder / CONFIG)


def load_run_config(path: str | Path) -> ExperimentConfig:
    """The resolved config stored in a checkpoint (path: run dir or checkpoint dir) or an export folder."""
    if is_export_dir(Path(path)):
        return _export_config(Path(path))
    checkpoint = resolve_checkpoint(path)
    return _read_config(checkpoint / "config.yaml")


def generator_files(path: str | Path, ema: bool = True) -> tuple[ExperimentConfig, Path]:
    """(config, weights file) of whatever `path` names; a Hub id is downloaded (or read from the cache)."""
    if isinstance(path, str) and is_repo_id(path):
        path = download(path)
    path = Path(path)
    if is_export_dir(path):
        return _export_config(path), path / WEIGHTS  # export.py already chose the EMA weights
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
    check_weights(generator, weights)
    load_weights(generator, weights)
    return generator.to(device).eval()


def tensor_shapes(weights: Path) -> dict[str, list[int]]:
    """Each tensor's shape in a safetensors file, read from its header (nothing loaded);
    CheckpointError naming the file when it is not a readable one."""
    try:
        with safe_open(str(weights), framework="pt") as f:
            return {name: list(f.get_slice(name).get_shape()) for name in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as err:
        raise CheckpointError(
            f"{weights}: not a readable safetensors file ({type(err).__name__}: {brief(str(err), 120)})"
        ) from None


def check_weights(generator: Generator, weights: Path) -> None:
    """CheckpointError unless `weights` is a readable safetensors file with exactly the tensors, and
    shapes, of the generator its config.yaml describes (names the first tensor that differs)."""
    found = tensor_shapes(weights)
    expected = {name: list(tensor.shape) for name, tensor in generator.state_dict().items()}
    missing, unexpected = sorted(expected.keys() - found.keys()), sorted(found.keys() - expected.keys())
    if missing:
        name = missing[0]
        raise CheckpointError(
            f"{weights}: has no tensor {name} (shape {expected[name]}) that the generator of its config.yaml "
            f"needs ({len(found)} tensors found, {len(expected)} expected); the weights and config.yaml do not belong together"
        )
    if unexpected:
        raise CheckpointError(
            f"{weights}: holds tensor {brief(unexpected[0], 80)}, which the generator of its config.yaml does not have; "
            "the weights and config.yaml do not belong together"
        )
    for name, shape in expected.items():
        if found[name] != shape:
            raise CheckpointError(
                f"{weights}: tensor {name} has shape {found[name]}, the generator of its config.yaml expects "
                f"{shape}; the weights and config.yaml do not belong together"
            )
