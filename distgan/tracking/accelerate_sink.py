"""Sinks that write through accelerate's tracker API: the Accelerator is built with their names
(`log_with`), `accelerator.init_trackers` starts them all at once, and each sink then holds its own
accelerate tracker (`self.tracker`: accelerate's GeneralTracker)."""

from __future__ import annotations

from typing import Any

from distgan.tracking.sink import Sink


class AccelerateSink(Sink):
    accelerate_name: str  # the name accelerate knows the tracker by ("wandb", "tensorboard")
    tracker: Any = None  # accelerate's GeneralTracker, once started

    def init_kwargs(self) -> dict[str, Any]:
        """This tracker's part of `accelerator.init_trackers(init_kwargs=...)`."""
        return {}

    def start_failed(self, err: Exception, tracker: Any) -> Any:
        """`accelerator.init_trackers` raised `err` while starting `tracker`: a started replacement
        tracker, or an exception (a TrackingError when the user can fix it)."""
        raise err

    def log_scalars(self, step: int, scalars: dict[str, float]) -> None:
        self.tracker.log(scalars, step=step)

    def log_summary(self, step: int, values: dict[str, Any]) -> None:
        numbers_only = {k: v for k, v in values.items() if isinstance(v, (int, float))}
        self.tracker.log(numbers_only, step=step)

    def close(self) -> None:
        tracker, self.tracker = self.tracker, None
        if tracker is not None:
            tracker.finish()


def _started(tracker: Any) -> bool:
    return getattr(tracker, "tracker", None) is not None  # accelerate's trackers set it in start()


def start_accelerate_sinks(sinks: list[AccelerateSink], accelerator, project: str) -> None:
    """One `accelerator.init_trackers` for every sink, each then given its started tracker.

    accelerate builds every tracker, then starts them in order: when one raises, the ones before it
    run, the failed one may recover (`start_failed`), and the ones after it are started here."""
    wanted = sorted(sink.accelerate_name for sink in sinks)
    if accelerator is None or sorted(str(t) for t in accelerator.log_with) != wanted:
        raise ValueError(f"Tracker: build the Accelerator with log_with={wanted}")  # a caller's bug
    before = list(accelerator.trackers)
    init_kwargs = {sink.accelerate_name: sink.init_kwargs() for sink in sinks}
    try:
        accelerator.init_trackers(project, init_kwargs=init_kwargs)
        failure = None
    except Exception as err:
        failure = err
    built = {t.name: t for t in accelerator.trackers if t not in before}
    for sink in sinks:
        tracker = built[sink.accelerate_name]
        if failure is not None and not _started(tracker):
            tracker = sink.start_failed(failure, tracker)
            failure = None
        elif not _started(tracker):  # init_trackers stopped at an earlier tracker's failure
            tracker.start()
        sink.tracker = tracker
    accelerator.trackers = [*before, *(sink.tracker for sink in sinks)]
    if failure is not None:  # every tracker started, yet init_trackers raised: not ours to hide
        raise failure
