"""What every destination of a run's numbers implements (`Sink`), and the run facts it is built from.

A tracker a user can pick in `log.trackers` is a `Sink` subclass registered under its name in
`distgan.registry.TRACKERS`; the `Tracker` builds it as `cls(log, run)` and fans every call out to it.
Every hook does nothing by default: a sink overrides only what it shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distgan.errors import UserError

if TYPE_CHECKING:
    from distgan.config import LogConfig


class TrackingError(UserError, RuntimeError):
    """A tracker could not be used as configured; the message says what to change."""


@dataclass(frozen=True)
class TrackedRun:
    """The facts about a run that trackers need, beyond the `log` section."""

    run_dir: Path
    is_main_process: bool
    total_steps: int  # train.steps: the end of the progress bar and of the console's "step N/total"
    resumed_step: int | None = None  # the checkpoint's step when resuming; None for a fresh run
    config: dict[str, Any] = field(default_factory=dict)  # the resolved config, as in config.yaml


class Sink:
    """One destination. Built on the main process only; `scalars` are plain floats, already on the host."""

    # The accelerate tracker this sink writes through (`Accelerator(log_with=...)`), None for none.
    accelerate_name: str | None = None

    def __init__(self, log: LogConfig, run: TrackedRun) -> None:
        self.log_config = log
        self.run = run

    @classmethod
    def wanted(cls, log: LogConfig) -> bool:
        """False when the section turns this tracker off although it is listed (wandb's mode disabled)."""
        return True

    @classmethod
    def check_installed(cls) -> None:
        """Raise TrackingError naming the `pip install` when a package this tracker needs is missing."""

    @classmethod
    def forget_run(cls, run_dir: Path) -> None:
        """A fresh run starts in `run_dir`: remove what this tracker kept there for an earlier run."""

    def log_scalars(self, step: int, scalars: dict[str, float]) -> None:
        """One log step's scalars."""

    def log_summary(self, step: int, values: dict[str, Any]) -> None:
        """Evaluation results: numbers, and text such as the feature extractor's name."""

    def log_picture(self, step: int, key: str, path: Path) -> None:
        """A picture already saved to disk (the sample grid)."""

    def rollback(self, step: int, detected_at: int, rollbacks: int, lr_scale: float) -> None:
        """Non-finite values at `detected_at`: the run continues from `step`; what came after is void."""

    def advance(self, step: int) -> None:
        """Every G step (no device sync): progress only."""

    def close(self) -> None:
        """The run ends (finished, stopped or failed): flush and finish."""
