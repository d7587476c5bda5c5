"""The `Tracker`: one call from the trainer fanned out to every sink, on the main process only.

The sinks are the console and the history files (always), then the trackers named in
`log.trackers`, each built from `distgan.registry.TRACKERS`. A sink that writes through accelerate
(wandb, tensorboard) needs the Accelerator built with `log_with(log)`; the Tracker starts them all
with one `accelerator.init_trackers`. A new tracker is a registered `Sink`: nothing here changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from distgan.registry import TRACKERS
from distgan.tracking.accelerate_sink import AccelerateSink, start_accelerate_sinks
from distgan.tracking.console import ConsoleSink
from distgan.tracking.jsonl import JsonlSink, plain
from distgan.tracking.sink import Sink, TrackedRun

if TYPE_CHECKING:
    from distgan.config import LogConfig


def gpu_memory_gib() -> dict[str, float]:
    """Allocated and peak CUDA memory of this process's current device, in GiB ({} without CUDA).

    Reads allocator counters only: no device sync. The peak is since the process started."""
    import torch

    if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return {}
    return {
        "gpu_mem_gib": torch.cuda.memory_allocated() / 2**30,
        "gpu_mem_peak_gib": torch.cuda.max_memory_allocated() / 2**30,
    }


def _selected(log: LogConfig) -> list[type[Sink]]:
    """The registered sinks `log.trackers` names and its settings switch on, each checked installed."""
    chosen = [TRACKERS.get(name) for name in log.trackers]
    chosen = [cls for cls in chosen if cls.wanted(log)]
    for cls in chosen:
        cls.check_installed()
    return chosen


def log_with(log: LogConfig) -> list[str]:
    """The accelerate trackers this log section feeds (`Accelerator(log_with=...)`); TrackingError,
    before any compute, for one whose package is missing (accelerate would drop it without a word)."""
    return [cls.accelerate_name for cls in _selected(log) if cls.accelerate_name]


def start_fresh_history(run_dir: Path) -> None:
    """A fresh run (no checkpoint, or --resume never) in `run_dir`: remove the history and tracker
    runs an earlier run left there, for every tracker distgan knows (listed in the config or not)."""
    for cls in (JsonlSink, *(cls for _, cls in TRACKERS.items())):
        cls.forget_run(run_dir)


class Tracker:
    """Console, history files and the selected trackers. On other processes every call does nothing.

    `accelerator`: built with `log_with(log)` (and `logging_dir(run_dir)` for TensorBoard); only
    sinks that write through accelerate need it, None is fine without them."""

    def __init__(self, log: LogConfig, run: TrackedRun, accelerator=None):
        self.accelerator = accelerator
        self.sinks: list[Sink] = []
        if not run.is_main_process:
            return
        run.run_dir.mkdir(parents=True, exist_ok=True)
        chosen = [cls(log, run) for cls in _selected(log)]
        accelerated = [sink for sink in chosen if isinstance(sink, AccelerateSink)]
        if accelerated:  # may fail (wandb online without a server): before a progress bar is drawn
            start_accelerate_sinks(accelerated, accelerator, log.wandb.project)
        self.sinks = [JsonlSink(log, run), ConsoleSink(log, run), *chosen]

    def log(self, step: int, scalars: dict[str, float]) -> None:
        """One log step: metrics.jsonl line, console line, tracker scalars (plus GPU memory)."""
        if self.sinks:
            scalars = {**scalars, **gpu_memory_gib()}
        for sink in self.sinks:
            sink.log_scalars(step, scalars)

    def rollback(self, step: int, detected_at: int, rollbacks: int, lr_scale: float) -> None:
        """After a rollback to `step`: history cut back to it, the event in events.jsonl and the console."""
        for sink in self.sinks:
            sink.rollback(step, detected_at, rollbacks, lr_scale)

    def log_picture(self, step: int, key: str, path: Path) -> None:
        """A picture already saved to disk (the sample grid): a wandb.Image, a TensorBoard image."""
        for sink in self.sinks:
            sink.log_picture(step, key, path)

    def log_summary(self, step: int, values: dict[str, Any]) -> None:
        """Evaluation results: console, eval.jsonl, trackers (numbers per step, text where they keep it)."""
        values = {k: plain(v) for k, v in values.items()}
        for sink in self.sinks:
            sink.log_summary(step, values)

    def advance(self, step: int) -> None:
        """Every G step: move the progress bar (no device sync)."""
        for sink in self.sinks:
            sink.advance(step)

    def close(self) -> None:
        """Finish every sink; the accelerator forgets their trackers (end_training finishes none twice)."""
        sinks, self.sinks = self.sinks, []
        owned = [sink.tracker for sink in sinks if isinstance(sink, AccelerateSink)]
        for sink in sinks:
            sink.close()
        if owned:
            self.accelerator.trackers = [t for t in self.accelerator.trackers if t not in owned]
