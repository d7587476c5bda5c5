"""Kill a re-export at each of its file writes in turn, and keep what the folder looked like after each.

    python tests/reliability/export_kill.py CHECKPOINT OUT EARLIER STATES [--no-exchange]

OUT starts as a copy of EARLIER (an earlier export). Run n forks a child that runs
`python -m distgan.export --checkpoint CHECKPOINT --out OUT` with every write of the export
(weights, config, samples, text files, the swap, the clean-up) counted, and SIGKILLs itself just
before write n; the parent copies OUT (or notes it missing) to STATES/n. The first run that ends
without being killed wrote the whole new export: STATES/summary.json lists every run.
--no-exchange: the filesystem cannot swap two folders in one step (the two-rename fallback).
Forking after the imports keeps each run to the export itself (OMP_NUM_THREADS=1 in the caller).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import sys
from pathlib import Path

import distgan.export
from distgan.config import ExperimentConfig

WRITES = [  # (owner, attribute): each call is one write of the export
    (distgan.export, "save_file"),
    (distgan.export, "save_png"),
    (distgan.export, "swap_in"),
    (ExperimentConfig, "save_yaml"),
    (pathlib.Path, "write_text"),
    (shutil, "rmtree"),
    (os, "rename"),  # inside swap_in's two-rename fallback
]


def _kill_at(n: int) -> None:
    count = 0
    for owner, name in WRITES:
        original = getattr(owner, name)

        def counted(*args, _original=original, **kwargs):
            nonlocal count
            count += 1
            if count == n:
                os.kill(os.getpid(), signal.SIGKILL)
            return _original(*args, **kwargs)

        setattr(owner, name, counted)


def main() -> None:
    checkpoint, out, earlier, states = (Path(a) for a in sys.argv[1:5])
    if "--no-exchange" in sys.argv:
        distgan.export._exchange = lambda a, b: False
    runs = []
    for n in range(1, 50):
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(earlier, out)
        pid = os.fork()
        if pid == 0:
            _kill_at(n)
            code = distgan.export.main(["--checkpoint", str(checkpoint), "--out", str(out)])
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        if out.exists():
            shutil.copytree(out, states / str(n))
        runs.append({"n": n, "killed": killed, "code": None if killed else os.WEXITSTATUS(status)})
        if not killed:
            break
    (states / "summary.json").write_text(json.dumps(runs))


if __name__ == "__main__":
    main()
