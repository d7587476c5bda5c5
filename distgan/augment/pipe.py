"""AugmentPipe: what D sees of a batch, and (ADA) how strongly, as one component.

The pipe owns the policy's probability p (DiffAugment: 1; ADA: adaptive, starting at
`augment.p_start`; none: 0), draws per-sample parameters from this process's RNG, keeps ADA's
tally of r_t = E[sign(D(real))] and moves p every `augment.interval` G steps. p is the same on
every rank: `adjust` sums every rank's tally through the caller's `world.sum` (one all-reduce).
Checkpoints hold p in meta.json (`state_dict`) and each rank's unfinished tally in its own file
(`tally`). Torch and config only: the collective is the caller's.
"""

from __future__ import annotations

import torch

from distgan.augment.ada import RealSignTally, adjusted_p
from distgan.augment.ops import AugmentParams, apply
from distgan.augment.pipeline import draw
from distgan.config import AugmentConfig


class AugmentPipe:
    def __init__(self, cfg: AugmentConfig, side: int, global_batch: int, device) -> None:
        self.cfg, self.side, self.global_batch = cfg, side, global_batch
        self.adaptive = cfg.policy == "ada"
        self.p = {"none": 0.0, "diffaugment": 1.0, "ada": cfg.p_start}[cfg.policy]
        self.tally = RealSignTally(device)  # ADA's r_t sums since the last adjustment (empty otherwise)

    @classmethod
    def fixed(cls, cfg: AugmentConfig, side: int, p: float, device="cpu") -> AugmentPipe:
        """A pipe at a given p (tests and benchmarks that step once)."""
        pipe = cls(cfg, side, 1, device)
        pipe.p = p if cfg.policy != "none" else 0.0
        return pipe

    def draw(self, count: int, device) -> AugmentParams | None:
        """Parameters for `count` images (None: D sees them as they are)."""
        if self.cfg.policy == "none" or self.p == 0.0:
            return None
        return draw(self.cfg, count, self.side, self.p, device)

    @staticmethod
    def seen_by_d(images: torch.Tensor, params: AugmentParams | None) -> torch.Tensor:
        return images if params is None else apply(images, params)

    def measure(self, d_real: torch.Tensor) -> dict[str, torch.Tensor]:
        """ADA's overfitting measure of one D step on its (augmented) reals, as a loss entry."""
        return {"augment_rt": torch.sign(d_real.detach().float()).mean()} if self.adaptive else {}

    def observe(self, d_losses: dict[str, torch.Tensor]) -> None:
        if self.adaptive:
            self.tally.add(d_losses["augment_rt"])  # on the device: no sync

    def adjust(self, step: int, world) -> None:
        """ADA: after G step `step`, every augment.interval steps, p from every rank's r_t since
        the last adjustment. ONE all-reduce (world.sum) and a host sync; the same p on every rank."""
        if not self.adaptive or step % self.cfg.interval:
            return
        sign_sum, steps = world.sum(self.tally.totals.clone()).tolist()
        self.tally.reset()
        images = round(steps / world.size) * self.global_batch  # one rank's D steps x the global batch
        self.p = adjusted_p(self.p, sign_sum / steps, self.cfg.target, images, self.cfg.speed_images)

    def scalars(self) -> dict[str, float]:
        return {"augment_p": self.p} if self.adaptive else {}

    def state_dict(self) -> dict:
        """meta.json's entry (the same on every rank; JSON keeps the float exactly)."""
        return {"augment_p": self.p if self.adaptive else 0.0}

    def load_state_dict(self, meta: dict) -> None:
        if self.adaptive:
            self.p = meta.get("augment_p", self.cfg.p_start)
