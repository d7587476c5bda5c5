"""Files written atomically: a reader (or a crash) sees the old content or the new, never half.

Every file distgan writes in place goes through `write_atomic`: a temporary sibling named
`.tmp-<name>.<pid>`, flushed and fsynced, then os.replace. Imports nothing from distgan.
"""

from __future__ import annotations

import os
from pathlib import Path

TMP_PREFIX = ".tmp-"  # temporary names start with this; readers and cleanup skip such files


def temporary_sibling(path: Path) -> Path:
    return path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}")


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """`data` (text is UTF-8) in `path` through a temporary sibling and os.replace."""
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
