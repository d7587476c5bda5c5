"""What a run shows and keeps while it trains: the console, the history files in the run directory
(metrics.jsonl, eval.jsonl, events.jsonl) and the trackers a user picks in `log.trackers`
(`distgan.registry.TRACKERS`: wandb, tensorboard, or one of their own), on the main process only.

The trainer hands plain floats (already pulled off the device at a log step by `LogWindow.scalars`),
picture paths and evaluation results; the sinks format, append and upload them. Nothing here talks
to other processes. The run directory's history is cut back or cleared by explicit calls the
trainer makes (`cut_history_to` at resume, `start_fresh_history` for a fresh run), never as a side
effect of building a tracker.

Add a tracker: subclass `Sink` in one file and `TRACKERS.register("name", YourSink)`; the name is
then valid in `log.trackers`.
"""

from distgan.tracking import tensorboard_sink, wandb_sink  # noqa: F401  (registers the built-in trackers)
from distgan.tracking.jsonl import EVAL_FILE, EVENTS_FILE, METRICS_FILE, cut_history_to, truncate_metrics
from distgan.tracking.sink import Sink, TrackedRun, TrackingError
from distgan.tracking.tensorboard_sink import logging_dir
from distgan.tracking.tracker import Tracker, gpu_memory_gib, log_with, start_fresh_history
from distgan.tracking.wandb_sink import WANDB_ID_FILE
from distgan.tracking.window import LogWindow

__all__ = [
    "EVAL_FILE",
    "EVENTS_FILE",
    "METRICS_FILE",
    "WANDB_ID_FILE",
    "LogWindow",
    "Sink",
    "TrackedRun",
    "Tracker",
    "TrackingError",
    "cut_history_to",
    "gpu_memory_gib",
    "log_with",
    "logging_dir",
    "start_fresh_history",
    "truncate_metrics",
]
