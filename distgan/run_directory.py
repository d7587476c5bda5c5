"""Check, before anything is built, that `train.out_dir` can become this run's directory.

A path that is an existing file, or lies under one, or in a directory this process cannot write,
would otherwise fail only at the first checkpoint or sample, after the compute was spent. The check
creates nothing: it writes one probe file in the nearest existing directory and removes it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from distgan.config import ConfigError


def check_out_dir(out_dir: str, key: str = "train.out_dir") -> None:
    """Raise ConfigError naming `key` when `out_dir` cannot be created or written."""
    path = Path(out_dir).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(
            f"{key}: {out_dir} is an existing file, not a directory; valid: a new or existing directory path"
        )
    existing = path.absolute()
    while not existing.exists():  # the nearest ancestor that exists: the run directory goes there
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            f"{key}: {out_dir} lies under {existing}, which is a file; valid: a path under a directory"
        )
    try:  # os.access says yes to root on read-only mounts and no-write directories: really try
        fd, probe = tempfile.mkstemp(prefix=".distgan-write-check-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ConfigError(
            f"{key}: cannot write in {existing} ({err.strerror or err}); valid: a directory you can write to"
        ) from None
