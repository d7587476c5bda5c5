"""Finding and trusting checkpoints: names, the `latest` pointer, manifests, meta.json, --resume.

A checkpoint is trusted only when its manifest (every file's size and sha256, written last)
matches what is on disk. `latest` may only hold a plain checkpoint name of the same
`checkpoints/` directory. Missing or broken pointers never mean "start from scratch" while
complete checkpoints exist: that is an error that lists them.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from pathlib import Path
from typing import Any

from distgan.errors import CheckpointError

LATEST = "latest"
TMP_PREFIX = ".tmp-"
MANIFEST = "manifest.json"
NAME = re.compile(r"step_(\d{7,})")  # what a checkpoint directory (and `latest`) may be called


def checkpoint_name(step: int) -> str:
    return f"step_{step:07d}"


def step_of(checkpoint_dir: Path) -> int:
    return int(NAME.fullmatch(checkpoint_dir.name).group(1))


def complete_checkpoints(root: Path) -> list[Path]:
    """Checkpoint directories under `root` that finished writing (meta.json present), oldest first."""
    if not root.is_dir():
        return []
    found = [
        p
        for p in root.iterdir()
        if NAME.fullmatch(p.name) and not p.is_symlink() and (p / "meta.json").is_file()
    ]
    return sorted(found, key=step_of)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(directory: Path) -> None:
    """manifest.json: size and sha256 of every other file below `directory` (call it last)."""
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST)
    entries = {str(p.relative_to(directory)): {"size": p.stat().st_size, "sha256": _sha256(p)} for p in files}
    (directory / MANIFEST).write_text(json.dumps({"files": entries}, indent=1))


# Written into a standalone checkpoint directory after the fact by `distgan.evaluate` (numbers only).
NOT_IN_MANIFEST = ("eval.json",)


def _files_present(checkpoint_dir: Path) -> set[str]:
    """Relative names of the plain files below `checkpoint_dir`; a symlink anywhere is refused."""
    present = set()
    for path in checkpoint_dir.rglob("*"):
        name = path.relative_to(checkpoint_dir).as_posix()
        if path.is_symlink():
            raise CheckpointError(
                f"{checkpoint_dir}: {name} is a symbolic link; a checkpoint holds plain files only (a link "
                "can swap in files the manifest never saw): replace it with the file or remove it"
            )
        if path.is_file() and name != MANIFEST and name not in NOT_IN_MANIFEST:
            present.add(name)
    return present


def _confined(checkpoint_dir: Path, name: object) -> str:
    """`name` if it is a plain relative path inside the checkpoint, else a CheckpointError (never opened)."""
    text = name if isinstance(name, str) else ""
    parts = text.split("/")
    if not text or text.startswith("/") or "\\" in text or any(p in ("", ".", "..") for p in parts):
        shown = repr(name)[:80]
        raise CheckpointError(
            f"{checkpoint_dir}: {MANIFEST} lists {shown}, not a file name inside the checkpoint; "
            "the manifest was edited by hand or is broken"
        )
    return text


def verify(checkpoint_dir: Path) -> None:
    """CheckpointError naming the first file that is missing, unlisted, truncated or changed.

    The manifest must list exactly the files present: names confined to the checkpoint (never
    opened otherwise) and no file more or less, so a shortened manifest cannot vouch for new weights."""
    manifest = checkpoint_dir / MANIFEST
    try:
        entries = json.loads(manifest.read_text())["files"]
        if not isinstance(entries, dict):
            raise TypeError(type(entries).__name__)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(
            f"{checkpoint_dir}: no readable {MANIFEST} ({type(err).__name__}): incomplete"
        ) from None
    listed = {_confined(checkpoint_dir, name) for name in entries}
    present = _files_present(checkpoint_dir)
    unlisted = sorted(present - listed)
    if unlisted:
        raise CheckpointError(
            f"{checkpoint_dir}: {unlisted[0]} is not listed in {MANIFEST} (added or swapped in after the checkpoint "
            "was written); remove it, or use another checkpoint"
        )
    for name, expected in entries.items():
        path = checkpoint_dir / name
        if name not in present:
            raise CheckpointError(f"{checkpoint_dir}: {name} is missing")
        if not isinstance(expected, dict) or not isinstance(expected.get("size"), int):
            raise CheckpointError(f"{checkpoint_dir}: {MANIFEST} entry for {name} has no integer size")
        if path.stat().st_size != expected["size"]:
            raise CheckpointError(
                f"{checkpoint_dir}: {name} has {path.stat().st_size} bytes, the manifest says {expected['size']} "
                "(truncated or replaced)"
            )
        if _sha256(path) != expected.get("sha256"):
            raise CheckpointError(
                f"{checkpoint_dir}: {name} does not match its sha256 in {MANIFEST} (corrupted)"
            )
    read_meta(checkpoint_dir)


def read_meta(checkpoint_dir: Path) -> dict[str, Any]:
    path = checkpoint_dir / "meta.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(
            f"{path}: not readable JSON ({type(err).__name__}); the checkpoint is broken"
        ) from None
    if not isinstance(meta, dict) or not isinstance(meta.get("step"), int):
        raise CheckpointError(f"{path}: expected a JSON object with an integer 'step'")
    if not (checkpoint_dir / "state").is_dir():
        raise CheckpointError(
            f"{checkpoint_dir}: no state/ directory (optimizer and RNG state); not resumable"
        )
    return meta


def _listing(root: Path) -> str:
    names = [p.name for p in complete_checkpoints(root)]
    return ", ".join(names) if names else "none"


def _pointer_target(root: Path) -> tuple[Path | None, str]:
    """(checkpoint named by root/latest, or None) and, when None, why the pointer is unusable."""
    pointer = root / LATEST
    if not pointer.exists():
        return None, f"{pointer} is missing"
    try:
        name = pointer.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as err:
        return None, f"{pointer} is not a readable text file ({type(err).__name__})"
    if not NAME.fullmatch(name):
        return None, f"{pointer} holds {name[:300]!r}, not a checkpoint name like step_0000100"
    if (root / name).resolve().parent != root.resolve():  # a symlink out would resume another run
        return None, f"{pointer} names {name}, a link to outside {root}"
    if not (root / name / "meta.json").is_file():
        return None, f"{pointer} names {name}, which is not a complete checkpoint"
    return root / name, ""


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint a run continues from (--resume auto), or None for a run that has none.

    `latest` names it; when that checkpoint fails its manifest, the newest one that verifies is
    used instead, with a warning naming the broken one.
    """
    root = Path(run_dir) / "checkpoints"
    complete = complete_checkpoints(root)
    target, problem = _pointer_target(root)
    if target is None:
        if not complete:
            return None
        newest = complete[-1]
        raise CheckpointError(
            f"{problem}, but {root} holds complete checkpoints: {_listing(root)}. Nothing was changed. "
            f"Continue with --resume {newest}, or start over with --resume never --overwrite"
        )
    candidates = [target] + [p for p in reversed(complete) if p != target]
    for candidate in candidates:
        try:
            verify(candidate)
        except CheckpointError as err:
            warnings.warn(f"skipping broken checkpoint: {err}", stacklevel=2)
            continue
        return candidate
    raise CheckpointError(f"no checkpoint in {root} passes its manifest check ({_listing(root)})")


def resolve_checkpoint(path: str | Path) -> Path:
    """A run directory (-> its latest good checkpoint), a `checkpoints` directory, or one checkpoint.

    A named checkpoint must verify; it is never silently replaced by another one."""
    path = Path(path)
    if (path / "meta.json").is_file():
        verify(path)
        return path
    for run_dir in (path, path.parent if path.name == "checkpoints" else None):
        if run_dir is not None and (run_dir / "checkpoints").is_dir():
            found = latest_checkpoint(run_dir)
            if found is not None:
                return found
    raise CheckpointError(
        f"{path}: not a checkpoint; expected a run directory with checkpoints/latest, "
        f"or a checkpoint directory containing meta.json"
    )


def resume_point(resume: str, run_dir: str | Path) -> Path | None:
    """--resume: auto (the run's latest checkpoint, if any), never, or a PATH (must be a checkpoint)."""
    if resume == "never":
        return None
    if resume == "auto":
        return latest_checkpoint(run_dir)
    return resolve_checkpoint(resume)
