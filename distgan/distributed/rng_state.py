"""One process's RNG state (python, numpy, torch, cuda) as JSON + safetensors: nothing to unpickle.

    rng_state_<rank>.json          python's and numpy's generator state (lists of ints)
    rng_state_<rank>.safetensors   torch's CPU (and CUDA) generator state (uint8 tensors)

A file that is missing, malformed or does not fit the generators is a CheckpointError naming it.
After a resume on another number of processes, every generator is seeded from `resized_seed`.
This module only writes, restores and seeds generator state; it does not decide when.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from distgan.errors import CheckpointError


def rng_files(directory: Path, rank: int) -> tuple[Path, Path]:
    return directory / f"rng_state_{rank}.json", directory / f"rng_state_{rank}.safetensors"


def save_rng_state(directory: Path, rank: int) -> None:
    json_path, tensor_path = rng_files(directory, rank)
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    plain = {
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
        "numpy": {
            "name": name,
            "keys": [int(k) for k in keys],
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
    }
    json_path.write_text(json.dumps(plain))
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors["cuda"] = torch.cuda.get_rng_state()
    save_file(tensors, str(tensor_path))


def load_rng_state(directory: Path, rank: int) -> None:
    """Restore this process's generators; CheckpointError naming the file that cannot be used."""
    json_path, tensor_path = rng_files(directory, rank)
    try:
        plain: dict[str, Any] = json.loads(json_path.read_text())
        py, npy = plain["python"], plain["numpy"]
        random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
        keys = np.asarray(npy["keys"], dtype=np.int64)
        if keys.shape != (624,) or keys.min() < 0 or keys.max() >= 2**32:
            raise ValueError("numpy keys must be 624 integers in [0, 2**32)")
        np.random.set_state(
            (npy["name"], keys.astype(np.uint32), npy["pos"], npy["has_gauss"], npy["cached_gaussian"])
        )
    except (OSError, ValueError, TypeError, KeyError) as err:  # JSONDecodeError is a ValueError
        raise CheckpointError(f"{json_path}: not a usable RNG state file ({err})") from None
    try:
        tensors = load_file(str(tensor_path))
        torch.set_rng_state(tensors["torch"])
        if "cuda" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(tensors["cuda"])
    except (OSError, SafetensorError, KeyError, RuntimeError, TypeError) as err:
        raise CheckpointError(f"{tensor_path}: not a usable RNG state file ({err})") from None


def resized_seed(seed: int, rank: int, step: int) -> int:
    """The seed of process `rank` after a resume on another number of processes at `step`: a
    function of the run's seed, the step and the new rank alone (the saved per-rank generator
    states belong to ranks of the old world)."""
    return int(np.random.SeedSequence([seed, step, rank, 0x5EED]).generate_state(1)[0])


def seed_everything(seed: int) -> None:
    """python's, numpy's and torch's (CPU and every CUDA device's) generators from one seed."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
