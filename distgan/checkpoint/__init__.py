"""distgan.checkpoint: the training state on disk, and the run directory's safety rules.

store.py   Checkpointer.save/restore over registered CheckpointParts; atomic text writes
locate.py  names, the `latest` pointer, manifests, meta.json, --resume resolution
rundir.py  the run lock, moving an old run or abandoned checkpoints aside
"""

from distgan.checkpoint.locate import (
    LATEST,
    MANIFEST,
    checkpoint_name,
    complete_checkpoints,
    latest_checkpoint,
    read_meta,
    resolve_checkpoint,
    resume_point,
    step_of,
    verify,
)
from distgan.checkpoint.rundir import LOCK_FILE, RunLock, abandon_newer, has_checkpoints, move_aside
from distgan.checkpoint.store import (
    EMA_WEIGHTS,
    Checkpointer,
    CheckpointParts,
    load_weights,
    save_weights,
    torch_versions,
    write_text_atomic,
)
from distgan.errors import CheckpointError

__all__ = [
    "EMA_WEIGHTS",
    "LATEST",
    "LOCK_FILE",
    "MANIFEST",
    "CheckpointError",
    "CheckpointParts",
    "Checkpointer",
    "RunLock",
    "abandon_newer",
    "checkpoint_name",
    "complete_checkpoints",
    "has_checkpoints",
    "latest_checkpoint",
    "load_weights",
    "move_aside",
    "read_meta",
    "resolve_checkpoint",
    "resume_point",
    "save_weights",
    "step_of",
    "torch_versions",
    "verify",
    "write_text_atomic",
]
