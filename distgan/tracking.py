"""Console, metrics.jsonl and wandb logging, on the main process only.

The trainer hands plain floats (already pulled off the device at a log step) and picture
paths; this module formats, appends and uploads. On resume, metrics.jsonl is cut back to the
checkpoint's step so a requeued run has every step exactly once, and the wandb run id stored in
the run directory is reused so the same wandb run continues.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from distgan.config import ExperimentConfig, WandbConfig

WANDB_ID_FILE = "wandb_run_id.txt"


class TrackingError(RuntimeError):
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
        if record.get("step", 0) <= last_step:
            kept.append(line)
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text("".join(line + "\n" for line in kept))
    tmp.replace(path)
    return len(kept)


def _format_console(step: int, total: int, scalars: dict[str, float]) -> str:
    parts = [f"step {step:>{len(str(total))}}/{total}"]
    for key in ("loss_d", "loss_g", "gp", "d_real", "d_fake"):
        if key in scalars:
            parts.append(f"{key} {scalars[key]:+.4f}")
    if "images_per_sec" in scalars:
        parts.append(f"{scalars['images_per_sec']:.0f} img/s")
    if "eta_sec" in scalars:
        eta = int(scalars["eta_sec"])
        parts.append(f"eta {eta // 3600:d}:{eta // 60 % 60:02d}:{eta % 60:02d}")
    return " | ".join(parts)


class Tracker:
    def __init__(self, cfg: ExperimentConfig, run_dir: Path, is_main: bool, resumed_step: int | None):
        self.cfg = cfg
        self.run_dir = run_dir
        self.is_main = is_main
        self.metrics_path = run_dir / "metrics.jsonl"
        self.wandb_run = None
        if not is_main:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        if resumed_step is not None:
            truncate_metrics(self.metrics_path, resumed_step)
        elif self.metrics_path.exists():
            self.metrics_path.unlink()  # a fresh run (--resume never) starts a fresh history
        if cfg.log.wandb.mode != "disabled":
            self.wandb_run = _init_wandb(cfg, run_dir, resume=resumed_step is not None)

    def log(self, step: int, scalars: dict[str, float]) -> None:
        if not self.is_main:
            return
        record = {"step": step, **scalars, "wall_time": time.time()}
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        print(_format_console(step, self.cfg.train.steps, scalars), flush=True)
        if self.wandb_run is not None:
            self.wandb_run.log(scalars, step=step)

    def log_picture(self, step: int, key: str, path: Path) -> None:
        if self.is_main and self.wandb_run is not None:
            import wandb

            self.wandb_run.log({key: wandb.Image(str(path))}, step=step)

    def log_summary(self, step: int, values: dict[str, Any]) -> None:
        """Evaluation results and other non-per-step values."""
        if not self.is_main:
            return
        print(f"step {step} | " + " | ".join(f"{k} {v}" for k, v in values.items()), flush=True)
        if self.wandb_run is not None:
            self.wandb_run.log(
                {k: v for k, v in values.items() if isinstance(v, (int, float))}, step=step
            )

    def close(self) -> None:
        if self.wandb_run is not None:
            self.wandb_run.finish()
            self.wandb_run = None


def _init_wandb(cfg: ExperimentConfig, run_dir: Path, resume: bool):
    import wandb

    settings: WandbConfig = cfg.log.wandb
    id_file = run_dir / WANDB_ID_FILE
    if id_file.is_file():
        run_id = id_file.read_text().strip()
    else:
        run_id = wandb.util.generate_id()
        id_file.write_text(run_id + "\n")
    kwargs = dict(
        project=settings.project,
        entity=settings.entity,
        name=settings.name or run_dir.name,
        tags=settings.tags,
        config=cfg.to_dict(),
        id=run_id,
        resume="allow",
        dir=str(run_dir),
    )
    os.environ.setdefault("WANDB_INIT_TIMEOUT", "30")
    try:
        return wandb.init(mode=settings.mode, **kwargs)
    except Exception as err:  # wandb raises several types for an unreachable server
        if settings.mode == "online" and settings.fallback_to_offline:
            print(f"wandb: online init failed ({err}); log.wandb.fallback_to_offline=true, going offline")
            return wandb.init(mode="offline", **kwargs)
        raise TrackingError(
            f"log.wandb.mode={settings.mode}: wandb.init failed: {err}. Without network use "
            f"log.wandb.mode=offline (then `wandb sync {run_dir}/wandb/offline-run-*` later), "
            f"or set log.wandb.fallback_to_offline=true"
        ) from err
