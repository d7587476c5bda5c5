"""The log window: the steps since the last log line, summed on the device, read at log steps only."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


class LogWindow:
    """Losses summed ON THE DEVICE, images and time on the host.

    `add` never syncs; `scalars` (called at log steps only) is where values leave the device. A
    value is the mean over the steps that reported it: a lazy regularizer (R1 every 16 D steps,
    path length every 4 G steps) reads its own size, not its size diluted by the steps without it.
    """

    def __init__(self) -> None:
        self._start()

    def _start(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}
        self.steps, self.images, self.started = 0, 0, time.perf_counter()

    def add(self, d_losses: dict[str, torch.Tensor], g_losses: dict[str, torch.Tensor], images: int) -> None:
        """One iteration: the last D step's and the G step's named tensors ("loss" -> loss_d / loss_g)."""
        for phase, losses in (("d", d_losses), ("g", g_losses)):
            for key, value in losses.items():
                name = f"loss_{phase}" if key == "loss" else key
                self.sums[name] = self.sums.get(name, 0.0) + value.detach().float()
                self.counts[name] = self.counts.get(name, 0) + 1
        self.steps += 1
        self.images += images

    def scalars(self, steps_left: int) -> dict[str, float]:
        """Means over the window, images/s and ETA; starts the next window. A host sync."""
        elapsed = time.perf_counter() - self.started
        out = {k: float(v.item()) / self.counts[k] for k, v in self.sums.items()}  # log-step host sync
        out["images_per_sec"] = self.images / max(elapsed, 1e-9)
        out["eta_sec"] = elapsed / self.steps * steps_left
        self._start()
        return out
