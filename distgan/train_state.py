"""TrainState: the loop's own counters, the same on every rank, kept in meta.json; and the
per-process noise seed."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass
class TrainState:
    step: int = 0  # G steps done
    images_seen: int = 0  # real images consumed by D, all processes together
    critic_steps: int = 0  # D steps already done of the unfinished iteration (a stop mid-D-loop)
    lr_scale: float = 1.0  # product of the rollback factors applied to both learning rates so far
    rollbacks: int = 0  # automatic rollbacks after non-finite values

    def state_dict(self) -> dict:
        return dataclasses.asdict(self)

    def load_state_dict(self, meta: dict) -> None:
        """In place (the checkpointer holds this object): every field meta.json has."""
        for f in dataclasses.fields(self):
            if f.name in meta:
                setattr(self, f.name, meta[f.name])


def noise_seed(seed: int, rank: int, rollbacks: int = 0) -> int:
    """The seed of a process's latent noise and augmentation: different on every rank (the model
    init, drawn before, is the same everywhere) and after every rollback (new noise)."""
    return seed * 1000 + rank + 1 + 7919 * rollbacks
