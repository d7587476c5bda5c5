"""Reference statistics as a `.npz` file with `mu` (D,) and `sigma` (D, D): the layout pytorch-fid
and clean-fid read and write, so FIDs can be compared with their published statistics.

Read with `np.load(allow_pickle=False)`: a file that holds pickled objects is refused, never run.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from distgan.files import write_atomic
from distgan.metrics.errors import MetricsError


def save_stats(path: str | Path, mean: np.ndarray, cov: np.ndarray) -> Path:
    """Write `mu` and `sigma` (float64) atomically; refuses to replace an existing file."""
    path = Path(path).expanduser()
    if path.exists():
        raise MetricsError(f"--export-stats: {path} exists; choose another name or remove it")
    if path.suffix != ".npz":
        raise MetricsError(f"--export-stats: {path} must end in .npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, mu=np.asarray(mean, np.float64), sigma=np.asarray(cov, np.float64))
    write_atomic(path, buffer.getvalue())
    return path


def load_stats(path: str | Path, feature_dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`mu` (D,) and `sigma` (D, D) from `path`; anything else is one MetricsError naming what is wrong."""
    path = Path(path).expanduser()
    where = f"--reference: {path}"
    if not path.is_file():
        raise MetricsError(f"{where}: file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            names = list(data.files)
            missing = [name for name in ("mu", "sigma") if name not in names]
            if missing:
                raise MetricsError(
                    f"{where} lacks {' and '.join(repr(m) for m in missing)} (holds {names[:8]}); "
                    "expected an .npz with mu (D,) and sigma (D, D), as pytorch-fid and clean-fid write"
                )
            mean, cov = data["mu"], data["sigma"]
    except MetricsError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:  # not npz, truncated, pickled
        reason = " ".join(str(err).split())[:120]
        raise MetricsError(
            f"{where} is not a readable .npz of mu and sigma ({type(err).__name__}: {reason})"
        ) from None
    if mean.ndim != 1 or cov.shape != (mean.shape[0], mean.shape[0]):
        raise MetricsError(f"{where}: mu must be (D,) and sigma (D, D), got {mean.shape} and {cov.shape}")
    if feature_dim is not None and mean.shape[0] != feature_dim:
        raise MetricsError(
            f"{where} holds {mean.shape[0]}-d statistics, the extractor gives {feature_dim}-d features"
        )
    mean, cov = mean.astype(np.float64), cov.astype(np.float64)
    if not (np.isfinite(mean).all() and np.isfinite(cov).all()):
        raise MetricsError(f"{where}: mu or sigma contain NaN or inf")
    return mean, cov
