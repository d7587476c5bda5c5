"""The run directory's safety rules: one run at a time, and nothing in it is ever deleted by surprise.

- `RunLock`: `<out_dir>/.distgan.lock`, an fcntl lock held for the whole run plus a JSON note of
  who holds it (host, pid, start time). A second run fails naming the holder. The kernel drops
  the lock when its process dies, so a lock file left by a dead run is taken over (with a
  warning); on NFS this relies on the server's lock manager.
- `move_aside`: `--resume never --overwrite` moves the old run into `previous-<timestamp>/`.
- `abandon_newer`: resuming from an older checkpoint moves the newer ones into
  `checkpoints/abandoned-<timestamp>/`, so the new lineage's pruning cannot touch them.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import socket
import time
import warnings
from pathlib import Path

import distgan.run_layout as run_layout
from distgan.checkpoint.locate import NAME, complete_checkpoints, step_of
from distgan.errors import CheckpointError

LOCK_FILE = ".distgan.lock"


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


class RunLock:
    """Exclusive use of a run directory by one training run (taken by the main process only).

    `path` and `role` let another writer (an export folder) use the same lock: the lock file, and
    what to call the folder and its writer in messages."""

    def __init__(
        self, run_dir: Path, path: Path | None = None, role: tuple[str, str] = ("train.out_dir", "run")
    ) -> None:
        self.folder = Path(run_dir)
        self.path = path or self.folder / LOCK_FILE
        self.role = role
        self._fd: int | None = None

    def acquire(self) -> None:
        setting, writer = self.role
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as err:
            raise CheckpointError(
                f"{setting} {self.folder}: cannot open its lock file {self.path} ({err.strerror or err}); "
                f"it must be a plain file distgan can write: remove what is in its place"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._read_note(fd)
            os.close(fd)
            raise CheckpointError(
                f"{setting} {self.folder} is in use by another {writer} ({holder}); wait for it to "
                f"finish or stop it, or choose another {setting}"
            ) from None
        previous = self._read_note(fd)
        if previous != "no note":
            warnings.warn(
                f"taking over the lock of a run that is no longer running ({previous})", stacklevel=2
            )
        note = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(note).encode(), 0)
        self._fd = fd
        atexit.register(self.release)  # also when set-up fails after this point

    @staticmethod
    def _read_note(fd: int) -> str:
        raw = os.pread(fd, 4096, 0)
        try:
            note = json.loads(raw)
            return f"host {note['host']}, pid {note['pid']}, started {note['started']}"
        except (ValueError, KeyError, TypeError):
            return "no note" if not raw else "unreadable note"

    def release(self) -> None:
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)  # a clean exit leaves no note: the next run takes over silently
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None


def _move_into(paths: list[Path], target: Path) -> Path | None:
    """Move `paths` into the new directory `target` (same filesystem: renames, nothing copied)."""
    if not paths:
        return None
    target.mkdir()
    for path in paths:
        os.replace(path, target / path.name)
    return target


def move_aside(run_dir: Path) -> Path | None:
    """Move everything of an old run (not the lock) into <run_dir>/previous-<timestamp>/."""
    entries = [p for p in run_dir.iterdir() if p.name != LOCK_FILE and not p.name.startswith("previous-")]
    return _move_into(entries, run_dir / f"previous-{_stamp()}")


def abandon_newer(root: Path, step: int) -> Path | None:
    """Move checkpoints of `root` newer than `step` into abandoned-<timestamp>/; return where."""
    newer = (
        [p for p in root.iterdir() if NAME.fullmatch(p.name) and step_of(p) > step] if root.is_dir() else []
    )
    return _move_into(newer, root / f"abandoned-{_stamp()}")


def has_checkpoints(run_dir: Path) -> list[Path]:
    return complete_checkpoints(run_dir / run_layout.CHECKPOINTS)
