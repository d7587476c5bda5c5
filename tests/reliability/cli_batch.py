"""Run many `python -m distgan.X ARGS` command lines in ONE Python process, for tests with many cases.

    python tests/reliability/cli_batch.py CASES.json RESULTS.json

Each case is {"module", "argv", "env" (set for this case only), "enospc" (optional: the export's
writes fail with "No space left on device")}. Each runs what `python -m MODULE ARGV` runs: the
module's `sys.exit(main())`, here `main(ARGV)`; its exit code, stdout and stderr are recorded, and an
exception that escapes is recorded as its traceback with code 1. One interpreter pays the torch
import once.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import io
import json
import os
import sys
import traceback
from pathlib import Path
from unittest import mock


def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def run_case(case: dict) -> dict:
    out, err = io.StringIO(), io.StringIO()
    saved_env = dict(os.environ)
    os.environ.update(case.get("env", {}))
    patches = contextlib.ExitStack()
    if case.get("enospc"):
        patches.enter_context(mock.patch("distgan.export.save_png", _full_disk))
    sys.argv = [case["module"], *case["argv"]]
    try:
        with patches, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = importlib.import_module(case["module"]).main(case["argv"])
    except SystemExit as stop:  # argparse
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:  # noqa: BLE001 - a traceback is exactly what the tests look for
        err.write(traceback.format_exc())
        code = 1
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
    return {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


def main() -> None:
    cases_file, results_file = sys.argv[1:3]  # before the cases set sys.argv
    results = [run_case(case) for case in json.loads(Path(cases_file).read_text())]
    Path(results_file).write_text(json.dumps(results))


if __name__ == "__main__":
    main()
