"""Opening a run directory for training: lock it, decide where to resume from, and refuse every
start that would overwrite or mix up an earlier run. Nothing is ever deleted here.

- a second run on the same train.out_dir fails naming the holder (checkpoint.RunLock);
- `--resume auto` with a missing or broken `latest` but checkpoints on disk fails listing them;
- `--resume never` where checkpoints exist fails unless --overwrite, which moves the old run to
  `previous-<timestamp>/`;
- resuming from an older checkpoint moves the newer ones to `checkpoints/abandoned-<timestamp>/`;
- a resume whose config changes what is trained fails with the diff unless --allow-config-change;
- `check_out_dir` (before the models are built): a train.out_dir that is a file, lies under one, or
  cannot be written fails at once instead of at the first checkpoint (it writes one probe file in
  the nearest existing directory and removes it; `os.access` says yes to root).
All ranks reach the same decision (one agreed flag) before any data is read or model built.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import yaml

import distgan.run_layout as run_layout
from distgan.checkpoint import (
    LATEST,
    RunLock,
    abandon_newer,
    has_checkpoints,
    move_aside,
    read_meta,
    resume_point,
)
from distgan.config import ConfigError, ExperimentConfig
from distgan.config.diff import config_changes, describe, is_resumable, schedule_shift
from distgan.distributed import any_rank
from distgan.errors import CheckpointError, UserError
from distgan.files import write_atomic


def check_config_change(cfg: ExperimentConfig, checkpoint_dir: Path, allowed: bool) -> str:
    """'' or a one-line description of what differs from the checkpoint's config; raises when a
    change would make the restored state and the config disagree and it was not allowed."""
    try:
        saved = yaml.safe_load((checkpoint_dir / run_layout.CONFIG).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise CheckpointError(
            f"{checkpoint_dir / 'config.yaml'}: unreadable ({type(err).__name__})"
        ) from None
    changes = config_changes(saved if isinstance(saved, dict) else {}, cfg.to_dict())
    blocked = [change for change in changes if not is_resumable(change[0])]
    if blocked and not allowed:
        raise ConfigError(
            f"resuming {checkpoint_dir} with a config that changes what is trained ({describe(blocked)}); "
            f"undo the change, start a new train.out_dir, or pass --allow-config-change"
        )
    shift = schedule_shift(changes, cfg.optim.lr_decay_start)
    return describe(changes) + (f"; warning: {shift}" if shift else "")


def open_run(cfg: ExperimentConfig, accelerator, resume: str, overwrite: bool, allow_change: bool):
    """(the held RunLock or None on other ranks, the checkpoint to resume from or None)."""
    run_dir = Path(cfg.train.out_dir)
    lock = RunLock(run_dir) if accelerator.is_main_process else None
    error, resume_from, changes = None, None, ""
    try:
        if lock is not None:
            lock.acquire()
        resume_from = resume_point(resume, run_dir)
        existing = has_checkpoints(run_dir) if resume == "never" else []
        if existing and not overwrite:
            raise CheckpointError(
                f"train.out_dir {run_dir} already holds checkpoints ({', '.join(p.name for p in existing)}) "
                f"and --resume never would overwrite them: continue with --resume auto, or pass --overwrite "
                f"to move the old run to {run_dir}/previous-<timestamp>/, or use another train.out_dir"
            )
        if resume_from is not None:
            changes = check_config_change(cfg, resume_from, allow_change)
    except UserError as err:
        error = err
    if any_rank(accelerator, error is not None):
        if lock is not None:
            lock.release()
        raise error or CheckpointError(
            "the run directory could not be opened (see the first process's error)"
        )
    if accelerator.is_main_process:
        _set_aside(run_dir, resume, overwrite, resume_from)
        if changes:
            print(f"config changed since {resume_from.name}: {changes}", flush=True)
    accelerator.wait_for_everyone()
    return lock, resume_from


def _set_aside(run_dir: Path, resume: str, overwrite: bool, resume_from: Path | None) -> None:
    if resume == "never" and overwrite and run_dir.is_dir():
        moved = move_aside(run_dir)
        if moved is not None:
            print(f"--overwrite: moved the previous run to {moved}", flush=True)
    if resume_from is None:
        return
    root = run_dir / run_layout.CHECKPOINTS
    abandoned = abandon_newer(root, read_meta(resume_from)["step"])
    if abandoned is not None:
        print(f"resuming from an older checkpoint: moved the newer ones to {abandoned}", flush=True)
        if resume_from.parent.resolve() == root.resolve():  # `latest` names the checkpoint we continue
            write_atomic(root / LATEST, resume_from.name + "\n")


def check_out_dir(run_dir: str, key: str = "train.out_dir") -> None:
    """Raise ConfigError naming `key` when `run_dir` cannot be created or written."""
    path = Path(run_dir).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(
            f"{key}: {run_dir} is an existing file, not a directory; valid: a new or existing directory path"
        )
    existing = path.absolute()
    while not existing.exists():  # the nearest ancestor that exists: the run directory goes there
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            f"{key}: {run_dir} lies under {existing}, which is a file; valid: a path under a directory"
        )
    try:  # os.access says yes to root on read-only mounts and no-write directories: really try
        fd, probe = tempfile.mkstemp(prefix=".distgan-write-check-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ConfigError(
            f"{key}: cannot write in {existing} ({err.strerror or err}); valid: a directory you can write to"
        ) from None
