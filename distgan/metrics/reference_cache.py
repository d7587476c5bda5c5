"""The real side of an evaluation, computed once and kept: a file per (dataset, split, resolution,
crop, resize, extractor, N, seed).

`<dir>/<name>.safetensors` holds the statistics FID needs (`mean`, (D,); `cov`, (D, D), float64),
the real features when a metric needs the rows (`features`, (N, D)), and, when a second network
labels them, `labels` (class predictions) or `probabilities`. No images: features are all the
metrics read. `<dir>/<name>.json` holds the key it was computed for and the row count, and is
written last. An entry that is missing, belongs to another key, cannot be read, holds another
number of rows than its key, or holds NaN is not used: a warning names the file and the real side
is computed again. safetensors + JSON only, never pickle. Knows nothing of datasets.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from distgan.config import ExperimentConfig
from distgan.metrics.errors import MetricsError

FORMAT_VERSION = 2  # 2: features and statistics only (1 also kept the images)


def default_reference_dir(cfg: ExperimentConfig) -> Path:
    """eval.reference_dir; when empty $DISTGAN_CACHE/references, else ~/.cache/distgan/references
    ($XDG_CACHE_HOME honoured)."""
    if cfg.eval.reference_dir:
        return usable_directory(Path(cfg.eval.reference_dir).expanduser(), "eval.reference_dir")
    if os.environ.get("DISTGAN_CACHE"):
        return usable_directory(Path(os.environ["DISTGAN_CACHE"]) / "references", "DISTGAN_CACHE")
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return usable_directory(root / "distgan" / "references", "XDG_CACHE_HOME (or ~/.cache)")


def usable_directory(path: Path, named_by: str) -> Path:
    """`path`, created if needed; MetricsError naming what set it when it cannot be (before any compute)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MetricsError(
            f"{named_by}: cannot create the reference cache directory {str(path)[:200]} "
            f"({err.strerror or type(err).__name__}); valid: a writable directory path"
        ) from None
    return path


def count_label(n: int) -> str:
    """Sample counts the way papers write them in metric names: 10000 -> '10k', 2500 -> '2500'."""
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def reference_key(
    cfg: ExperimentConfig, extractor: str, labeler: str | None, count: int | None, seed: int, resize: str
) -> dict[str, Any]:
    """Everything the real features depend on (count None: the whole split). Local paths are absolute."""
    data = cfg.data
    path = data.path
    if data.source not in ("hub", "embedded", "toy") and path:  # a local file or folder (any local source)
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
        "resize": resize,
        "extractor": extractor,
        "inception_weights": cfg.eval.inception_weights if extractor == "inception" else None,
        "labeler": labeler,
        "num": "full" if count is None else count,
        "seed": None if count is None else seed,  # the whole split is not a sample
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
    num = key["num"] if key["num"] == "full" else count_label(key["num"])
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return f"{where[:60]}-{key['split']}-{res}-{key['extractor']}-{num}-{digest}"


@dataclass
class CachedReference:
    features: torch.Tensor | None  # (N, D) float32, when the metrics need the rows
    mean: torch.Tensor  # (D,) float64
    cov: torch.Tensor  # (D, D) float64
    second: torch.Tensor | None  # labels (N,) int64 or probabilities (N, K), or None
    num_real: int
    path: Path


def _unusable(path: Path, why: str) -> None:
    warnings.warn(f"reference cache {path}: {why}; not used, computing the real side again", stacklevel=3)


def load_reference(
    directory: Path, key: dict[str, Any], feature_dim: int, needs_features: bool
) -> CachedReference | None:
    """The cached reference for `key`, or None (none yet, another key's, or a broken entry: warned)."""
    base = Path(directory) / reference_name(key)
    meta_path, tensors_path = base.with_suffix(".json"), base.with_suffix(".safetensors")
    if not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        num_real = int(meta["num_real"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        _unusable(meta_path, f"unreadable ({type(err).__name__})")
        return None
    if meta.get("key") != json.loads(json.dumps(key)):
        return None  # a hash collision or an edited file: another reference, silently not ours
    try:
        tensors = load_file(str(tensors_path))
    except (OSError, SafetensorError, ValueError) as err:
        _unusable(tensors_path, f"unreadable ({type(err).__name__}: {' '.join(str(err).split())[:80]})")
        return None
    mean, cov, features = tensors.get("mean"), tensors.get("cov"), tensors.get("features")
    second = tensors.get("labels", tensors.get("probabilities"))
    wanted_rows = key["num"] if isinstance(key["num"], int) else num_real
    if mean is None or cov is None or mean.shape != (feature_dim,) or cov.shape != (feature_dim, feature_dim):
        _unusable(tensors_path, f"no {feature_dim}-d mean and covariance")
    elif num_real != wanted_rows or (features is not None and features.shape != (wanted_rows, feature_dim)):
        rows = num_real if num_real != wanted_rows or features is None else features.shape[0]
        _unusable(tensors_path, f"holds {rows} rows, its key says {wanted_rows}")
    elif needs_features and features is None:
        return None  # statistics only (an FD-only run wrote it): compute the rows now
    elif not all(
        torch.isfinite(t).all() for t in (mean, cov) + ((features,) if features is not None else ())
    ):
        _unusable(tensors_path, "the cached real features hold NaN or inf")
    elif second is not None and second.shape[0] != num_real:
        _unusable(tensors_path, f"holds {second.shape[0]} labels for {num_real} rows")
    else:
        return CachedReference(features, mean, cov, second, num_real, tensors_path)
    return None


def save_reference(
    directory: Path,
    key: dict[str, Any],
    features: torch.Tensor | None,
    mean: torch.Tensor,
    cov: torch.Tensor,
    second: torch.Tensor | None,
    num_real: int,
) -> Path:
    """Write the tensors, then the JSON (atomically, last). Returns the safetensors path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    base = directory / reference_name(key)
    tensors = {"mean": mean.double().contiguous(), "cov": cov.double().contiguous()}
    if features is not None:
        tensors["features"] = features.detach().float().cpu().contiguous()
    if second is not None:
        name = "labels" if second.ndim == 1 else "probabilities"
        tensors[name] = second.detach().cpu().contiguous()
    tmp = directory / f".tmp-{base.name}.{os.getpid()}"
    save_file(tensors, f"{tmp}.safetensors")
    os.replace(f"{tmp}.safetensors", base.with_suffix(".safetensors"))
    meta = {"key": key, "num_real": int(num_real), "created_at": time.time()}
    Path(f"{tmp}.json").write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(f"{tmp}.json", base.with_suffix(".json"))
    return base.with_suffix(".safetensors")
