"""The real side of an evaluation, computed once and kept: a file per (dataset, split, resolution,
extractor, N, seed).

`<dir>/<name>.safetensors` holds the real sample as uint8 (`images`, (N, H, W, C); toy data:
`points`, float32 (N, 2)), its features (`features`, (N, D)), their statistics (`mean`, (D,);
`cov`, (D, D), float64, what FD needs) and, when a second network labels them, `labels` (class
predictions) or `probabilities`. `<dir>/<name>.json` holds the key it was computed for and is
written last: a reference without its JSON, or whose JSON names another key, is computed again.
safetensors + JSON only, never pickle. Knows nothing of datasets: the caller hands the examples.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from distgan.config import ExperimentConfig

FORMAT_VERSION = 1


def default_reference_dir(cfg: ExperimentConfig) -> Path:
    """eval.reference_dir; when empty $DISTGAN_CACHE/references, else ~/.cache/distgan/references
    ($XDG_CACHE_HOME honoured)."""
    if cfg.eval.reference_dir:
        return Path(cfg.eval.reference_dir).expanduser()
    if os.environ.get("DISTGAN_CACHE"):
        return Path(os.environ["DISTGAN_CACHE"]) / "references"
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "distgan" / "references"


def count_label(n: int) -> str:
    """Sample counts the way papers write them in metric names: 10000 -> '10k', 2500 -> '2500'."""
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def reference_key(
    cfg: ExperimentConfig, extractor: str, labeler: str | None, num: int, seed: int
) -> dict[str, Any]:
    """Everything the real features depend on. Local data paths are made absolute."""
    data = cfg.data
    path = data.path
    if data.source in ("parquet", "imagefolder", "prepared") and path:
        path = str(Path(path).expanduser().resolve())
    return {
        "format": FORMAT_VERSION,
        "dataset": {
            "source": data.source,
            "path": path,
            "name": data.name,
            "image_column": data.image_column,
        },
        "split": data.split,
        "resolution": None if data.is_toy else data.resolution,
        "channels": None if data.is_toy else cfg.model.channels,
        "crop": {"center_crop": data.center_crop, "crop_size": data.crop_size},
        "extractor": extractor,
        "inception_weights": cfg.eval.inception_weights if extractor == "inception" else None,
        "labeler": labeler,
        "num": num,
        "seed": seed,
        # toy points are drawn from the mixture with the run's seed (data/toy.py), not sampled from rows
        "toy": {"train_seed": cfg.train.seed, "toy_samples": data.toy_samples} if data.is_toy else None,
    }


def reference_name(key: dict[str, Any]) -> str:
    """A file name people can read, plus a hash of the whole key."""
    dataset = key["dataset"]
    where = re.sub(r"[^A-Za-z0-9]+", "_", f"{dataset['source']}_{Path(dataset['path'] or '').name}").strip(
        "_"
    )
    res = f"{key['resolution']}px" if key["resolution"] else "2d"
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return f"{where[:60]}-{key['split']}-{res}-{key['extractor']}-{count_label(key['num'])}-{digest}"


@dataclass
class CachedReference:
    samples: torch.Tensor  # uint8 (N, H, W, C) images, or float32 (N, 2) points
    features: torch.Tensor  # (N, D) float32
    mean: torch.Tensor  # (D,) float64
    cov: torch.Tensor  # (D, D) float64
    second: torch.Tensor | None  # labels (N,) int64 or probabilities (N, K), or None
    path: Path


def samples_to_store(samples: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] (N, C, H, W) -> uint8 (N, H, W, C) as if saved as PNG; 2-D points unchanged."""
    if samples.ndim == 2:
        return samples.detach().float().cpu().contiguous()
    x = ((samples.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous()


def load_reference(directory: Path, key: dict[str, Any]) -> CachedReference | None:
    """The cached reference for `key`, or None when there is none (or it belongs to another key)."""
    base = Path(directory) / reference_name(key)
    meta_path, tensors_path = base.with_suffix(".json"), base.with_suffix(".safetensors")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    if meta.get("key") != json.loads(json.dumps(key)) or not tensors_path.is_file():
        return None
    tensors = load_file(str(tensors_path))
    samples = tensors.get("images", tensors.get("points"))
    second = tensors.get("labels", tensors.get("probabilities"))
    return CachedReference(
        samples, tensors["features"], tensors["mean"], tensors["cov"], second, tensors_path
    )


def save_reference(
    directory: Path,
    key: dict[str, Any],
    samples: torch.Tensor,
    features: torch.Tensor,
    mean: torch.Tensor,
    cov: torch.Tensor,
    second: torch.Tensor | None,
) -> Path:
    """Write the tensors, then the JSON (atomically, last). Returns the safetensors path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    base = directory / reference_name(key)
    stored = samples_to_store(samples)
    tensors = {
        "images" if stored.dtype == torch.uint8 else "points": stored,
        "features": features.detach().float().cpu().contiguous(),
        "mean": mean.double().contiguous(),
        "cov": cov.double().contiguous(),
    }
    if second is not None:
        name = "labels" if second.ndim == 1 else "probabilities"
        tensors[name] = second.detach().cpu().contiguous()
    tmp = directory / f".tmp-{base.name}.{os.getpid()}"
    save_file(tensors, f"{tmp}.safetensors")
    os.replace(f"{tmp}.safetensors", base.with_suffix(".safetensors"))
    meta = {"key": key, "num_real": int(features.shape[0]), "created_at": time.time()}
    Path(f"{tmp}.json").write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(f"{tmp}.json", base.with_suffix(".json"))
    return base.with_suffix(".safetensors")
