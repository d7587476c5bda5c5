"""A peer that died or went silent: one line naming it and the checkpoint to resume from, no traceback.

When a rank dies, its peers' next collective fails at once (the connection is reset); when it hangs,
they fail after distributed.timeout_s. Either way every survivor lands here. The failed collective
does not say which rank is gone, so each survivor writes `distgan/lost-contact/<rank>` into the
launcher's key-value store (the one the process group was formed with) and, for REPORT_WAIT_S,
watches which ranks write theirs: the ones that never do are the lost ones. No per-step cost: the
store is only touched after a failure. If the store itself is gone, its host went with it: rank 0's
node.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import torch

from distgan.config import DistributedConfig
from distgan.errors import LOST_CONTACT_EXIT_CODE

REPORT_WAIT_S = 3.0  # survivors of one collective fail within about this long of each other
KEY = "distgan/lost-contact/"
# What gloo and NCCL say when a peer is gone or silent (their errors are plain RuntimeErrors).
GONE_SIGNS = ("connection reset by peer", "connection closed by peer", "broken pipe")
SILENT_SIGNS = ("timed out waiting", "watchdog caught collective operation timeout")  # gloo's, NCCL's


def lost_peer(err: BaseException) -> bool:
    """`err` is a collective that failed because another process is gone or silent."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return False
    if isinstance(err, dist.DistError):
        return True
    return isinstance(err, RuntimeError) and any(
        sign in str(err).lower() for sign in GONE_SIGNS + SILENT_SIGNS
    )


def cause(err: BaseException, timeout_s: int) -> str:
    if any(sign in str(err).lower() for sign in SILENT_SIGNS):
        return f"no answer within distributed.timeout_s={timeout_s} s"
    return (
        f"the connection was closed; a silent peer counts as lost after distributed.timeout_s={timeout_s} s"
    )


def silent_ranks(rank: int, size: int, wait_s: float) -> list[int] | None:
    """The ranks that did not report the failure within `wait_s` (None: the store is unreachable)."""
    try:
        store = torch.distributed.distributed_c10d._get_default_store()
        store.set_timeout(timedelta(seconds=max(wait_s, 1.0)))
        store.set(f"{KEY}{rank}", "1")
        deadline = time.monotonic() + wait_s
        while True:
            silent = [r for r in range(size) if r != rank and not store.check([f"{KEY}{r}"])]
            if not silent or time.monotonic() >= deadline:
                return silent
            time.sleep(0.1)
    except (RuntimeError, OSError):  # DistStoreError / a reset connection: the store's host is gone
        return None


def where(err: BaseException) -> str:
    """The innermost distgan function the failed collective was called from."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if "/distgan/" in f.filename]
    if not frames:
        return "a collective"
    frame = frames[-1]
    module = Path(frame.filename).as_posix().rsplit("/distgan/", 1)[1].removesuffix(".py").replace("/", ".")
    return f"distgan.{module}.{frame.name}"


def describe_lost(silent: list[int] | None) -> str:
    if silent is None:
        return "rank 0's node (the host of the launcher's store)"
    if not silent:
        return "another process"
    return f"rank{'s' if len(silent) > 1 else ''} {', '.join(map(str, silent))}"


def report_lost_contact(
    err: BaseException, world, step: int, dist: DistributedConfig, last_checkpoint: Callable[[], Path | None]
) -> int:
    """Print the one line for a lost peer (`world`: this process's World) and return
    LOST_CONTACT_EXIT_CODE; re-raise anything else."""
    if not lost_peer(err):
        raise err
    timeout_s = dist.timeout_s
    lost = describe_lost(silent_ranks(world.rank, world.size, min(REPORT_WAIT_S, timeout_s)))
    try:
        checkpoint = last_checkpoint()
    except Exception as problem:  # a damaged `latest`: the resume will say which ones verify
        checkpoint = f"unknown ({' '.join(str(problem).split())[:200]})"
    print(
        f"error: lost contact with {lost} at step {step} (in {where(err)}: {cause(err, timeout_s)}); the "
        f"last complete checkpoint is {checkpoint or 'none yet'}; resubmit the same command to resume",
        file=sys.stderr,
        flush=True,
    )
    return LOST_CONTACT_EXIT_CODE
