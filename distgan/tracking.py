"""Console, metrics.jsonl, eval.jsonl and the trackers (wandb, TensorBoard), on the main process only;
the log window.

The trainer hands plain floats (already pulled off the device at a log step), picture paths
and evaluation results; this module formats, appends and uploads. It never touches the device
beyond reading CUDA memory counters, and never talks to other processes.

Trackers go through accelerate's tracker API: `log_with(cfg)` is what the Accelerator is built
with (`Accelerator(log_with=..., project_dir=...)`), `Tracker` calls `accelerator.init_trackers`
and then `accelerator.log` / each tracker's `log_images`. log.trackers picks any subset of
wandb and tensorboard; metrics.jsonl is always written.

TensorBoard (log.trackers: [tensorboard]): event files in <run_dir>/tensorboard/<log.wandb.project>/
(`tensorboard --logdir <run_dir>/tensorboard`): every scalar of metrics.jsonl and eval.jsonl at its
step, the sample grids as images. A resumed run opens its writer with purge_step = checkpoint step
+ 1, and a rollback reopens it the same way, so TensorBoard hides what was logged after the state
the run continues from: every step appears once. A fresh run starts a fresh directory.

wandb (log.wandb.mode):
- `disabled`: nothing wandb is imported or written.
- `offline`: the run is written to <run_dir>/wandb/offline-run-*; upload it later with the
  `wandb sync ...` command printed at the end.
- `online`: an unreachable server (or a missing API key) raises TrackingError while the tracker
  is built, before any training step, after at most WANDB_INIT_TIMEOUT seconds (default here
  30 s, wandb's own is 90 s). With log.wandb.fallback_to_offline=true it goes offline instead.

Resume: the wandb run id lives in <run_dir>/wandb_run_id.txt and a resumed run continues the
same wandb run (resume="allow"); metrics.jsonl and eval.jsonl are cut back to the checkpoint's
step so a requeued run has every step exactly once. A fresh run (no checkpoint) gets a new id.
Online, wandb ignores steps below the server's last step: steps logged after the checkpoint by
the killed attempt keep their first values there.
"""

from __future__ import annotations

import importlib.util
import json
import numbers
import os
import secrets
import shutil
import string
import sys
import time
from pathlib import Path
from typing import Any

import torch

from distgan.config import ExperimentConfig
from distgan.errors import UserError

WANDB_ID_FILE = "wandb_run_id.txt"
METRICS_FILE = "metrics.jsonl"
EVAL_FILE = "eval.jsonl"
EVENTS_FILE = "events.jsonl"  # rollbacks and other rare events, one JSON object per line
DEFAULT_INIT_TIMEOUT_S = 30.0  # wandb's default of 90 s is too long to wait before failing
TENSORBOARD_DIR = "tensorboard"  # the Accelerator's logging_dir inside the run directory


class TrackingError(UserError, RuntimeError):
    """wandb could not be used as configured; the message says what to change."""


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
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text("".join(line + "\n" for line in kept))
    tmp.replace(path)
    return len(kept)


def gpu_memory_gib() -> dict[str, float]:
    """Allocated and peak CUDA memory of this process's current device, in GiB ({} without CUDA).

    Reads allocator counters only: no device sync. The peak is since the process started."""
    if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return {}
    return {
        "gpu_mem_gib": torch.cuda.memory_allocated() / 2**30,
        "gpu_mem_peak_gib": torch.cuda.max_memory_allocated() / 2**30,
    }


def _format_console(step: int, total: int, scalars: dict[str, float]) -> str:
    return " | ".join([f"step {step:>{len(str(total))}}/{total}", *_console_parts(scalars)])


def _console_parts(scalars: dict[str, float]) -> list[str]:
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
    """A tqdm bar on the terminal stdout (losses and images/s as its postfix)."""
    from tqdm import tqdm

    # A pty without a size (script, some CI runners) reads 0 x 0, and tqdm would hide its bar: 80 x 24 then.
    size = shutil.get_terminal_size()
    return tqdm(
        total=total, initial=start, file=sys.stdout, unit="step", ncols=size.columns, nrows=size.lines,
        desc="train", bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]",
    )  # fmt: skip


def _plain(value: Any) -> Any:
    """A JSON/wandb-friendly copy of one result value (numpy scalars become floats)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Real):
        return int(value) if isinstance(value, numbers.Integral) else float(value)
    return str(value)


class LogWindow:
    """The steps since the last log line: losses summed ON THE DEVICE, images and time on the host.

    `add` never syncs; `scalars` (called at log steps only) is where values leave the device.
    """

    def __init__(self) -> None:
        self._start()

    def _start(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.steps, self.images, self.started = 0, 0, time.perf_counter()

    def add(self, d_losses: dict[str, torch.Tensor], g_losses: dict[str, torch.Tensor], images: int) -> None:
        """One iteration: the last D step's and the G step's named tensors ("loss" -> loss_d / loss_g)."""
        for phase, losses in (("d", d_losses), ("g", g_losses)):
            for key, value in losses.items():
                name = f"loss_{phase}" if key == "loss" else key
                self.sums[name] = self.sums.get(name, 0.0) + value.detach().float()
        self.steps += 1
        self.images += images

    def scalars(self, steps_left: int) -> dict[str, float]:
        """Means over the window, images/s and ETA; starts the next window. A host sync."""
        elapsed = time.perf_counter() - self.started
        out = {k: float(v.item()) / self.steps for k, v in self.sums.items()}  # log-step host sync
        out["images_per_sec"] = self.images / max(elapsed, 1e-9)
        out["eta_sec"] = elapsed / self.steps * steps_left
        self._start()
        return out


def log_with(cfg: ExperimentConfig) -> list[str]:
    """The accelerate trackers this config feeds (`Accelerator(log_with=...)`); TrackingError, before any
    compute, for one whose package is missing (accelerate itself would drop it without a word)."""
    names = ["wandb"] if "wandb" in cfg.log.trackers and cfg.log.wandb.mode != "disabled" else []
    if names and importlib.util.find_spec("wandb") is None:
        raise TrackingError(
            f"log.wandb.mode: {cfg.log.wandb.mode} needs the wandb package: pip install 'distgan[wandb]'; "
            "or set log.wandb.mode=disabled"
        )
    if "tensorboard" in cfg.log.trackers:
        if importlib.util.find_spec("tensorboard") is None:  # what torch.utils.tensorboard writes with
            raise TrackingError(
                "log.trackers: tensorboard needs the tensorboard package: pip install 'distgan[tensorboard]'; "
                "or remove tensorboard from log.trackers"
            )
        names.append("tensorboard")
    return names


def logging_dir(run_dir: Path) -> Path:
    """The Accelerator's logging_dir (`project_dir`) for a run: TensorBoard writes below it."""
    return run_dir / TENSORBOARD_DIR


class Tracker:
    """`accelerator`: built with `log_with(cfg)` and `logging_dir(run_dir)`; None = files only."""

    def __init__(
        self, cfg: ExperimentConfig, run_dir: Path, is_main: bool, resumed_step: int | None, accelerator=None
    ):
        self.cfg = cfg
        self.run_dir = run_dir
        self.is_main = is_main
        self.metrics_path = run_dir / METRICS_FILE
        self.eval_path = run_dir / EVAL_FILE
        self.wandb_run = None
        self.accelerator = accelerator
        self.trackers: list = []  # accelerate's GeneralTracker objects, main process only
        self.bar = None  # a progress bar when stdout is a terminal; one line per log step otherwise
        if not is_main:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        if resumed_step is not None:
            for path in (self.metrics_path, self.eval_path):
                truncate_metrics(path, resumed_step)
        else:  # a fresh run (no checkpoint, or --resume never) starts a fresh history and tracker runs
            for path in (self.metrics_path, self.eval_path, run_dir / WANDB_ID_FILE, run_dir / EVENTS_FILE):
                path.unlink(missing_ok=True)
            shutil.rmtree(logging_dir(run_dir), ignore_errors=True)
        wanted = log_with(cfg)
        if wanted:
            if accelerator is None or sorted(str(t) for t in accelerator.log_with) != sorted(wanted):
                raise ValueError(f"Tracker: build the Accelerator with log_with={wanted}")  # a caller's bug
            self.trackers = _start_trackers(cfg, run_dir, accelerator, resumed_step)
            wandb_tracker = self._tracker("wandb")
            self.wandb_run = wandb_tracker.run if wandb_tracker is not None else None
        if sys.stdout.isatty():
            self.bar = _progress_bar(cfg.train.steps, resumed_step or 0)

    def _tracker(self, name: str):
        return next((t for t in self.trackers if t.name == name), None)

    def log(self, step: int, scalars: dict[str, float]) -> None:
        """One log step: metrics.jsonl line, console line, tracker scalars (plus GPU memory)."""
        if not self.is_main:
            return
        scalars = {**scalars, **gpu_memory_gib()}
        record = {"step": step, **scalars, "wall_time": time.time()}
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.bar is None:  # Slurm logs, files, pipes: one plain line per log step
            print(_format_console(step, self.cfg.train.steps, scalars), flush=True)
        else:
            self.bar.set_postfix_str(_bar_postfix(scalars), refresh=False)
            self.bar.update(step - self.bar.n)
        if self.trackers:
            self.accelerator.log(scalars, step=step)

    def rollback(self, step: int, detected_at: int, rollbacks: int, lr_scale: float) -> None:
        """After a rollback to `step`: history cut back to it, the event in events.jsonl and the console."""
        if not self.is_main:
            return
        for path in (self.metrics_path, self.eval_path):
            truncate_metrics(path, step)
        event = {"step": step, "event": "rollback", "detected_at": detected_at, "rollbacks": rollbacks}
        event["lr_scale"] = lr_scale
        with open(self.run_dir / EVENTS_FILE, "a") as f:
            f.write(json.dumps({**event, "wall_time": time.time()}) + "\n")
        self._say(
            f"non-finite values at step {detected_at}: rolled back to step {step} (rollback {rollbacks}), "
            f"learning rates x{lr_scale:g}"
        )
        if self.bar is not None:
            self.bar.n = step
            self.bar.refresh()
        if self.wandb_run is not None:  # wandb's step only grows: the event goes to the summary
            self.wandb_run.summary.update({"rollbacks": rollbacks, "lr_scale": lr_scale})
        board = self._tracker("tensorboard")
        if board is not None:  # TensorBoard hides the abandoned steps from here on
            _reopen_tensorboard(board, purge_step=step + 1)

    def log_picture(self, step: int, key: str, path: Path) -> None:
        """A picture already saved to disk (the sample grid): a wandb.Image, a TensorBoard image."""
        if not self.is_main:
            return
        for tracker in self.trackers:
            if tracker.name == "wandb":
                import wandb

                tracker.log({key: wandb.Image(str(path), caption=f"step {step}")}, step=step)
            elif tracker.name == "tensorboard":
                import numpy as np
                from PIL import Image

                with Image.open(path) as image:
                    picture = np.asarray(image.convert("RGB"))
                tracker.log_images({key: picture[None]}, step=step, dataformats="NHWC")
                tracker.writer.flush()  # log_images does not flush; a killed run keeps its pictures

    def log_summary(self, step: int, values: dict[str, Any]) -> None:
        """Evaluation results: console, eval.jsonl, wandb (numbers per step, text in the summary)."""
        if not self.is_main:
            return
        values = {k: _plain(v) for k, v in values.items()}
        self._say(f"step {step} | " + " | ".join(f"{k} {v}" for k, v in values.items()))
        with open(self.eval_path, "a") as f:
            f.write(json.dumps({"step": step, **values, "wall_time": time.time()}) + "\n")
        numbers_only = {k: v for k, v in values.items() if isinstance(v, (int, float))}
        if self.trackers:
            self.accelerator.log(numbers_only, step=step)
        if self.wandb_run is not None:
            for key, value in values.items():
                if key not in numbers_only:
                    self.wandb_run.summary[key] = value  # e.g. which feature extractor made the numbers

    def advance(self, step: int) -> None:
        """Every G step: move the progress bar (no device sync; tqdm redraws at most 10 times a second)."""
        if self.bar is not None:
            self.bar.update(step - self.bar.n)

    def _say(self, text: str) -> None:
        """A console line that leaves the progress bar intact."""
        if self.bar is None:
            print(text, flush=True)
        else:
            self.bar.write(text, file=sys.stdout)

    def close(self) -> None:
        """Finish every tracker (accelerator.end_training then finds none left to finish)."""
        if self.bar is not None:
            bar, self.bar = self.bar, None
            bar.close()
        run, self.wandb_run = self.wandb_run, None
        offline_dir = None
        if run is not None and run.offline:
            offline_dir = Path(run.dir).parent  # run.dir is <sync dir>/files
        trackers, self.trackers = self.trackers, []
        for tracker in trackers:
            tracker.finish()
        if trackers:
            self.accelerator.trackers = [t for t in self.accelerator.trackers if t not in trackers]
        if offline_dir is not None:
            print(
                f"wandb: offline run saved in {offline_dir}; upload it with: wandb sync {offline_dir}",
                flush=True,
            )


def _reopen_tensorboard(tracker, purge_step: int) -> None:
    """A new event file whose first event tells TensorBoard's reader to drop steps >= purge_step."""
    from torch.utils.tensorboard import SummaryWriter

    tracker.writer.close()
    tracker.writer = SummaryWriter(tracker.logging_dir, purge_step=purge_step)


def _new_run_id() -> str:
    """8 lowercase letters/digits, the shape of wandb's own ids."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


def _run_id(run_dir: Path, resumed: bool) -> str:
    """The stored id when resuming, else a new one (stored atomically for the next resume)."""
    id_file = run_dir / WANDB_ID_FILE
    if resumed and id_file.is_file() and id_file.read_text().strip():
        return id_file.read_text().strip()
    run_id = _new_run_id()
    tmp = id_file.with_name(f".tmp-{id_file.name}")
    tmp.write_text(run_id + "\n")
    tmp.replace(id_file)
    return run_id


def _init_timeout_s() -> float:
    raw = os.environ.get("WANDB_INIT_TIMEOUT", "")
    try:
        return float(raw) if raw else DEFAULT_INIT_TIMEOUT_S
    except ValueError:
        raise TrackingError(f"WANDB_INIT_TIMEOUT must be a number of seconds, got {raw!r}") from None


def _start_trackers(cfg: ExperimentConfig, run_dir: Path, accelerator, resumed_step: int | None) -> list:
    """accelerator.init_trackers with distgan's settings; wandb's failures become TrackingErrors."""
    init_kwargs: dict[str, dict] = {}
    if resumed_step is not None:  # hide what a killed attempt logged after the checkpoint
        init_kwargs["tensorboard"] = {"purge_step": resumed_step + 1}
    wandb_wanted = any(str(t) == "wandb" for t in accelerator.log_with)
    if wandb_wanted:
        init_kwargs["wandb"] = _wandb_kwargs(cfg, run_dir, resumed=resumed_step is not None)
    before = list(accelerator.trackers)
    try:
        accelerator.init_trackers(cfg.log.wandb.project, init_kwargs=init_kwargs)
    except Exception as err:
        if not wandb_wanted:
            raise
        started = [t for t in accelerator.trackers if t not in before and t.name != "wandb"]
        wandb_tracker = _wandb_failed(cfg, run_dir, err, init_kwargs["wandb"])
        accelerator.trackers = [*before, *started, wandb_tracker]
        for tracker in started:
            if getattr(tracker, "writer", None) is None:  # init stopped at wandb, before starting it
                tracker.start()
    return [t for t in accelerator.trackers if t not in before]


def _wandb_kwargs(cfg: ExperimentConfig, run_dir: Path, resumed: bool) -> dict:
    """wandb.init's arguments, less `project` (accelerate's init_trackers passes it)."""
    import wandb

    settings = cfg.log.wandb
    return dict(
        mode=settings.mode,
        entity=settings.entity,
        name=settings.name or run_dir.name,
        tags=list(settings.tags),
        config=cfg.to_dict(),  # the fully resolved config, as in <run_dir>/config.yaml
        id=_run_id(run_dir, resumed),
        resume="allow",
        dir=str(run_dir),  # offline runs live in the run directory, next to what they describe
        settings=wandb.Settings(init_timeout=_init_timeout_s()),
    )


def _wandb_failed(cfg: ExperimentConfig, run_dir: Path, err: Exception, kwargs: dict):
    """wandb.init raised (CommError, UsageError, ... for an unreachable server): a TrackingError, or the
    offline run of log.wandb.fallback_to_offline as accelerate's WandBTracker."""
    import wandb
    from accelerate.tracking import WandBTracker

    settings, timeout_s = cfg.log.wandb, _init_timeout_s()
    # A failed init leaves the run id registered in wandb's service process: shut it down,
    # or the offline retry below fails with "run ID ... is in use".
    wandb.teardown()
    reason = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
    if settings.mode == "offline":
        raise TrackingError(
            f"log.wandb.mode=offline: could not start the offline wandb run in {run_dir / 'wandb'} "
            f"({reason}); check that the directory is writable, or set log.wandb.mode=disabled"
        ) from err
    if not settings.fallback_to_offline:
        raise TrackingError(
            f"log.wandb.mode=online: could not start the wandb run ({reason}). Without network, set "
            f"log.wandb.mode=offline and upload later with `wandb sync {run_dir}/wandb/offline-run-*`; "
            f"or set log.wandb.fallback_to_offline=true to go offline automatically; or "
            f"log.wandb.mode=disabled. Check the API key (`wandb login`) and WANDB_BASE_URL; a slow "
            f"server needs a larger WANDB_INIT_TIMEOUT (now {timeout_s:g} s)."
        ) from err
    print(
        f"wandb: online start failed ({reason}); log.wandb.fallback_to_offline=true, "
        f"logging offline to {run_dir / 'wandb'}",
        flush=True,
    )
    tracker = WandBTracker(settings.project, **{**kwargs, "mode": "offline"})
    try:
        tracker.start()
        return tracker
    except Exception as err:
        wandb.teardown()
        raise TrackingError(
            f"log.wandb.fallback_to_offline=true: the offline wandb run in {run_dir / 'wandb'} could not "
            f"start either ({type(err).__name__}: {err}); set log.wandb.mode=disabled"
        ) from err
