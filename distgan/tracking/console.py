"""The console: a tqdm bar on a terminal (losses and images/s as its postfix), one plain line per log
step otherwise (Slurm logs, files, pipes). Evaluation results and rollbacks get a line of their own."""

from __future__ import annotations

import shutil
import sys
from typing import TYPE_CHECKING, Any

from distgan.tracking.sink import Sink, TrackedRun

if TYPE_CHECKING:
    from distgan.config import LogConfig


def format_line(step: int, total: int, scalars: dict[str, float]) -> str:
    """The plain log line: `step  3/10 | loss_d +0.1234 | ... | eta 0:01:05`."""
    return " | ".join([f"step {step:>{len(str(total))}}/{total}", *_line_parts(scalars)])


def _line_parts(scalars: dict[str, float]) -> list[str]:
    parts = []
    for key in ("loss_d", "loss_g", "gp", "d_real", "d_fake"):
        if key in scalars:
            parts.append(f"{key} {scalars[key]:+.4f}")
    if "images_per_sec" in scalars:
        parts.append(f"{scalars['images_per_sec']:.0f} img/s")
    if "gpu_mem_peak_gib" in scalars:
        parts.append(f"peak mem {scalars['gpu_mem_peak_gib']:.2f} GiB")
    if "eta_sec" in scalars:
        eta = int(scalars["eta_sec"])
        parts.append(f"eta {eta // 3600:d}:{eta // 60 % 60:02d}:{eta % 60:02d}")
    return parts


def _bar_postfix(scalars: dict[str, float]) -> str:
    """Losses and images/s, short enough to leave the bar room in 80 columns."""
    names = {"loss_d": "D", "loss_g": "G", "gp": "gp"}
    parts = [f"{short} {scalars[key]:+.4f}" for key, short in names.items() if key in scalars]
    if "images_per_sec" in scalars:
        parts.append(f"{scalars['images_per_sec']:.0f} img/s")
    return " | ".join(parts)


def _progress_bar(total: int, start: int):
    """A tqdm bar on the terminal stdout."""
    from tqdm import tqdm

    # A pty without a size (script, some CI runners) reads 0 x 0, and tqdm would hide its bar: 80 x 24 then.
    size = shutil.get_terminal_size()
    return tqdm(
        total=total, initial=start, file=sys.stdout, unit="step", ncols=size.columns, nrows=size.lines,
        desc="train", bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]",
    )  # fmt: skip


class ConsoleSink(Sink):
    def __init__(self, log: LogConfig, run: TrackedRun) -> None:
        super().__init__(log, run)
        self.bar = _progress_bar(run.total_steps, run.resumed_step or 0) if sys.stdout.isatty() else None

    def log_scalars(self, step: int, scalars: dict[str, float]) -> None:
        if self.bar is None:
            print(format_line(step, self.run.total_steps, scalars), flush=True)
        else:
            self.bar.set_postfix_str(_bar_postfix(scalars), refresh=False)
            self.bar.update(step - self.bar.n)

    def log_summary(self, step: int, values: dict[str, Any]) -> None:
        self._say(f"step {step} | " + " | ".join(f"{k} {v}" for k, v in values.items()))

    def rollback(self, step: int, detected_at: int, rollbacks: int, lr_scale: float) -> None:
        self._say(
            f"non-finite values at step {detected_at}: rolled back to step {step} (rollback {rollbacks}), "
            f"learning rates x{lr_scale:g}"
        )
        if self.bar is not None:
            self.bar.n = step
            self.bar.refresh()

    def advance(self, step: int) -> None:
        if self.bar is not None:  # tqdm redraws at most 10 times a second
            self.bar.update(step - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            bar, self.bar = self.bar, None
            bar.close()

    def _say(self, text: str) -> None:
        """A console line that leaves the progress bar intact."""
        if self.bar is None:
            print(text, flush=True)
        else:
            self.bar.write(text, file=sys.stdout)
