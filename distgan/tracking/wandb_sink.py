"""wandb (log.trackers: [wandb], switched on by log.wandb.mode).

- `disabled`: nothing wandb is imported or written.
- `offline`: the run is written to <run_dir>/wandb/offline-run-*; upload it later with the
  `wandb sync ...` command printed at the end.
- `online`: an unreachable server (or a missing API key) raises TrackingError while the tracker
  is built, before any training step, after at most WANDB_INIT_TIMEOUT seconds (default here
  30 s, wandb's own is 90 s). With log.wandb.fallback_to_offline=true it goes offline instead.

Resume: the wandb run id lives in <run_dir>/wandb_run_id.txt and a resumed run continues the
same wandb run (resume="allow"); a fresh run gets a new id. Online, wandb ignores steps below the
server's last step: steps logged after the checkpoint by the killed attempt keep their first values
there. A rollback goes to the run's summary (wandb's step only grows).
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import string
from pathlib import Path
from typing import Any

from distgan.files import write_atomic
from distgan.registry import TRACKERS
from distgan.tracking.accelerate_sink import AccelerateSink
from distgan.tracking.sink import TrackingError

WANDB_ID_FILE = "wandb_run_id.txt"
DEFAULT_INIT_TIMEOUT_S = 30.0  # wandb's default of 90 s is too long to wait before failing


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
    write_atomic(id_file, run_id + "\n")
    return run_id


def _init_timeout_s() -> float:
    raw = os.environ.get("WANDB_INIT_TIMEOUT", "")
    try:
        return float(raw) if raw else DEFAULT_INIT_TIMEOUT_S
    except ValueError:
        raise TrackingError(f"WANDB_INIT_TIMEOUT must be a number of seconds, got {raw!r}") from None


class WandbSink(AccelerateSink):
    accelerate_name = "wandb"

    @classmethod
    def wanted(cls, log) -> bool:
        return log.wandb.mode != "disabled"

    @classmethod
    def check_installed(cls) -> None:
        if importlib.util.find_spec("wandb") is None:
            raise TrackingError(
                "log.trackers: wandb needs the wandb package: pip install 'distgan[wandb]'; "
                "or set log.wandb.mode=disabled"
            )

    @classmethod
    def forget_run(cls, run_dir: Path) -> None:
        (run_dir / WANDB_ID_FILE).unlink(missing_ok=True)

    def init_kwargs(self) -> dict[str, Any]:
        """wandb.init's arguments, less `project` (accelerate's init_trackers passes it)."""
        import wandb

        settings, run_dir = self.log_config.wandb, self.run.run_dir
        return dict(
            mode=settings.mode,
            entity=settings.entity,
            name=settings.name or run_dir.name,
            tags=list(settings.tags),
            config=self.run.config,  # the fully resolved config, as in <run_dir>/config.yaml
            id=_run_id(run_dir, resumed=self.run.resumed_step is not None),
            resume="allow",
            dir=str(run_dir),  # offline runs live in the run directory, next to what they describe
            settings=wandb.Settings(init_timeout=_init_timeout_s()),
        )

    def start_failed(self, err: Exception, tracker: Any) -> Any:
        """wandb.init raised (CommError, UsageError, ... for an unreachable server): a TrackingError, or
        the offline run of log.wandb.fallback_to_offline as accelerate's WandBTracker."""
        import wandb
        from accelerate.tracking import WandBTracker

        settings, run_dir, timeout_s = self.log_config.wandb, self.run.run_dir, _init_timeout_s()
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
        offline = WandBTracker(settings.project, **{**tracker.init_kwargs, "mode": "offline"})
        try:
            offline.start()
            return offline
        except Exception as retry_err:
            wandb.teardown()
            raise TrackingError(
                f"log.wandb.fallback_to_offline=true: the offline wandb run in {run_dir / 'wandb'} could "
                f"not start either ({type(retry_err).__name__}: {retry_err}); set log.wandb.mode=disabled"
            ) from retry_err

    def log_summary(self, step: int, values: dict[str, Any]) -> None:
        super().log_summary(step, values)  # the numbers at their step
        for key, value in values.items():
            if not isinstance(value, (int, float)):
                self.tracker.run.summary[key] = value  # e.g. which feature extractor made the numbers

    def log_picture(self, step: int, key: str, path: Path) -> None:
        import wandb

        self.tracker.log({key: wandb.Image(str(path), caption=f"step {step}")}, step=step)

    def rollback(self, step: int, detected_at: int, rollbacks: int, lr_scale: float) -> None:
        self.tracker.run.summary.update({"rollbacks": rollbacks, "lr_scale": lr_scale})

    def close(self) -> None:
        run = self.tracker.run if self.tracker is not None else None
        offline_dir = Path(run.dir).parent if run is not None and run.offline else None  # <sync dir>/files
        super().close()
        if offline_dir is not None:
            print(
                f"wandb: offline run saved in {offline_dir}; upload it with: wandb sync {offline_dir}",
                flush=True,
            )


TRACKERS.register("wandb", WandbSink)
