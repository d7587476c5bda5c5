"""Reading pickle-based checkpoint files (DeepSpeed's, accelerate's) without running code from them.

A `.pt`/`.bin`/`.pkl` file is a pickle: loading it with `weights_only=False` runs whatever a
tampered file asks for. Everything here loads with `weights_only=True` (tensors, plain containers
and numbers) plus a short allow-list of the library types those files really hold, found by
loading real ZeRO-1/2 and DDP checkpoints. A file that needs anything else, or is not a readable
pickle at all, is a CheckpointError naming it. This module reads; it never decides what to load.
"""

from __future__ import annotations

import pickle
import random
import zipfile
from pathlib import Path

import numpy as np
import torch

from distgan.errors import CheckpointError

# torch.save writes a zip archive; older writers (and plain pickle.dump) a bare pickle stream.
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTOCOL_OPCODE = b"\x80"


def is_pickle_file(path: Path) -> bool:
    """True for a torch zip archive or a bare pickle stream (what a resume would unpickle)."""
    with open(path, "rb") as f:
        head = f.read(4)
    return head == _ZIP_MAGIC or head[:1] == _PICKLE_PROTOCOL_OPCODE


def deepspeed_safe_globals() -> list:
    """Library types inside DeepSpeed ZeRO-1/2 checkpoints (0.19.8): the loss scaler (static, or
    dynamic under fp16), the ZeRO stage enum and the parameter fragment map; all plain data."""
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [LossScaler, DynamicLossScaler, ZeroStageEnum, fragment_address]


def numpy_rng_safe_globals() -> list:
    """What accelerate's `random_states_<rank>.pkl` holds: numpy's RNG state (an ndarray of uint32)."""
    from accelerate.utils.other import TORCH_SAFE_GLOBALS

    return list(TORCH_SAFE_GLOBALS)


def _reason(err: BaseException) -> str:
    """The one informative line of torch's long 'Weights only load failed' message."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for line in lines:
        if "WeightsUnpickler error:" in line:
            return line.split("WeightsUnpickler error:", 1)[1].strip().split(". ")[0]
    for line in lines:
        if "GLOBAL" in line:  # e.g. "Trying to load unsupported GLOBAL posix.system whose module ..."
            return line.rstrip(".")
    return (lines[0] if lines else type(err).__name__)[:200]


def safe_torch_load(path: str | Path, map_location=None, allowed: list | tuple = (), mmap: bool = False):
    """torch.load(path, weights_only=True) with `allowed` types; CheckpointError naming the file if refused."""
    path = Path(path)
    try:
        with torch.serialization.safe_globals(list(allowed)):
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(
            f"{path}: refused to load ({_reason(err)}): only tensors and plain data are accepted from a "
            f"checkpoint; the file is corrupt or was not written by distgan: resume from another checkpoint"
        ) from None


def check_accelerate_state(directory: Path, rank: int) -> None:
    """Before `accelerator.load_state`: every pickle in `directory` must load with weights_only=True, and
    this rank's `random_states_<rank>.pkl` must exist and restore. accelerate itself already loads with
    weights_only=True, but it turns a refused file into a traceback, and a refused or missing RNG file
    into a log line while the resume silently continues with other random state."""
    allowed = numpy_rng_safe_globals()
    for path in sorted(p for p in directory.iterdir() if p.is_file() and is_pickle_file(p)):
        # mmap: only the pickled structure is read here, not the tensors' bytes (a zip archive only)
        zipped = zipfile.is_zipfile(path)
        safe_torch_load(path, map_location="cpu", allowed=allowed, mmap=zipped)
    rng_path = directory / f"random_states_{rank}.pkl"
    states = safe_torch_load(rng_path, map_location="cpu", allowed=allowed)
    try:
        random.setstate(states["random_state"])
        np.random.set_state(states["numpy_random_seed"])
        torch.set_rng_state(states["torch_manual_seed"])
        if torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["torch_cuda_manual_seed"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(
            f"{rng_path}: not a usable RNG state file ({type(err).__name__}: {err})"
        ) from None
