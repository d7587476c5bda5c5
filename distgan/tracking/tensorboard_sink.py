"""TensorBoard (log.trackers: [tensorboard]): event files in <run_dir>/tensorboard/<log.wandb.project>/
(`tensorboard --logdir <run_dir>/tensorboard`): every scalar of metrics.jsonl and eval.jsonl at its
step, the sample grids as images.

A resumed run opens its writer with purge_step = checkpoint step + 1, and a rollback reopens it the
same way, so TensorBoard hides what was logged after the state the run continues from: every step
appears once. A fresh run starts a fresh directory.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

from distgan.registry import TRACKERS
from distgan.tracking.accelerate_sink import AccelerateSink
from distgan.tracking.sink import TrackingError

TENSORBOARD_DIR = "tensorboard"  # the Accelerator's logging_dir inside the run directory


def logging_dir(run_dir: Path) -> Path:
    """The Accelerator's logging_dir (`project_dir`) for a run: TensorBoard writes below it."""
    return run_dir / TENSORBOARD_DIR


class TensorBoardSink(AccelerateSink):
    accelerate_name = "tensorboard"

    @classmethod
    def check_installed(cls) -> None:
        if importlib.util.find_spec("tensorboard") is None:  # what torch.utils.tensorboard writes with
            raise TrackingError(
                "log.trackers: tensorboard needs the tensorboard package: pip install 'distgan[tensorboard]'; "
                "or remove tensorboard from log.trackers"
            )

    @classmethod
    def forget_run(cls, run_dir: Path) -> None:
        shutil.rmtree(logging_dir(run_dir), ignore_errors=True)

    def init_kwargs(self) -> dict[str, Any]:
        if self.run.resumed_step is None:
            return {}
        return {"purge_step": self.run.resumed_step + 1}  # hide what a killed attempt logged after it

    def log_picture(self, step: int, key: str, path: Path) -> None:
        import numpy as np
        from PIL import Image

        with Image.open(path) as image:
            picture = np.asarray(image.convert("RGB"))
        self.tracker.log_images({key: picture[None]}, step=step, dataformats="NHWC")
        self.tracker.writer.flush()  # log_images does not flush; a killed run keeps its pictures

    def rollback(self, step: int, detected_at: int, rollbacks: int, lr_scale: float) -> None:
        """A new event file whose first event tells TensorBoard's reader to drop steps > `step`."""
        from torch.utils.tensorboard import SummaryWriter

        self.tracker.writer.close()
        self.tracker.writer = SummaryWriter(self.tracker.logging_dir, purge_step=step + 1)


TRACKERS.register("tensorboard", TensorBoardSink)
