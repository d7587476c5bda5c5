"""The run directory's history files: metrics.jsonl (one line per log step), eval.jsonl (one line per
evaluation) and events.jsonl (rollbacks and other rare events). Always written, on the main process."""

from __future__ import annotations

import json
import numbers
import time
from pathlib import Path
from typing import Any

import distgan.run_layout as run_layout
from distgan.files import write_atomic
from distgan.tracking.sink import Sink

METRICS_FILE, EVAL_FILE, EVENTS_FILE = run_layout.METRICS, run_layout.EVAL, run_layout.EVENTS


def truncate_metrics(path: Path, last_step: int) -> int:
    """Keep only lines with step <= last_step (atomically). Returns the number of lines kept."""
    if not path.is_file():
        return 0
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line torn by a hard kill
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= last_step:
            kept.append(line)
    write_atomic(path, "".join(line + "\n" for line in kept))
    return len(kept)


def cut_history_to(run_dir: Path, step: int) -> None:
    """metrics.jsonl and eval.jsonl without the lines after `step`: a run resumed (or rolled back) to
    `step` logs the later steps again, and each must appear once."""
    for name in (METRICS_FILE, EVAL_FILE):
        truncate_metrics(run_dir / name, step)


def plain(value: Any) -> Any:
    """A JSON/wandb-friendly copy of one result value (numpy scalars become floats)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Real):
        return int(value) if isinstance(value, numbers.Integral) else float(value)
    return str(value)


def _append(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps({**record, "wall_time": time.time()}) + "\n")


class JsonlSink(Sink):
    """Appends to the history files; a rollback cuts them back and is recorded in events.jsonl."""

    @classmethod
    def forget_run(cls, run_dir: Path) -> None:
        for name in (METRICS_FILE, EVAL_FILE, EVENTS_FILE):
            (run_dir / name).unlink(missing_ok=True)

    def log_scalars(self, step: int, scalars: dict[str, float]) -> None:
        _append(self.run.run_dir / METRICS_FILE, {"step": step, **scalars})

    def log_summary(self, step: int, values: dict[str, Any]) -> None:
        _append(self.run.run_dir / EVAL_FILE, {"step": step, **values})

    def rollback(self, step: int, detected_at: int, rollbacks: int, lr_scale: float) -> None:
        cut_history_to(self.run.run_dir, step)
        event = {"step": step, "event": "rollback", "detected_at": detected_at, "rollbacks": rollbacks}
        _append(self.run.run_dir / EVENTS_FILE, {**event, "lr_scale": lr_scale})
