"""Toy 2D mixtures (ring8, grid25): mode definitions and a resumable per-process stream.

ring8: 8 Gaussians on a circle of radius 2, std 0.02 (WGAN-GP paper, toy experiments).
grid25: 25 Gaussians at {-4,-2,0,2,4}^2, std 0.05 (VEEGAN / PacGAN).

One epoch is a fixed set of `data.toy_samples` points drawn once from `train.seed`;
each epoch visits them in a seeded permutation (seed, epoch) and process `rank` takes
every `world_size`-th position, so processes are disjoint and together complete.
Batches run across epoch boundaries, so nothing is dropped. The position is
(epoch, index in this process's share), which makes resume exact.
This module knows nothing about images or `datasets`.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from distgan.config import ConfigError, DataConfig, ExperimentConfig
from distgan.data.batch import Batch
from distgan.data.errors import DataError
from distgan.data.resplit import next_layers, resplit_rows, summed_counter
from distgan.data.sources import DataSource
from distgan.registry import SOURCES

TOY_DATASETS = ("ring8", "grid25")


def toy_modes(name: str) -> tuple[np.ndarray, float]:
    """Return (means [K, 2] float64, std) of the named toy mixture."""
    if name == "ring8":
        angles = 2 * math.pi * np.arange(8) / 8
        return 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1), 0.02
    if name == "grid25":
        ticks = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
        return np.array([(x, y) for x in ticks for y in ticks]), 0.05
    raise DataError(f"data.path: toy dataset must be one of {list(TOY_DATASETS)}, got {name!r}")


def toy_points(name: str, num: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw `num` points of mixture `name` from `seed`: (points float32 [num, 2], modes int64 [num])."""
    means, std = toy_modes(name)
    rng = np.random.default_rng([seed, 0x70])  # a stream of its own: never the data-order stream
    modes = rng.integers(0, len(means), size=num)
    points = means[modes] + std * rng.standard_normal((num, 2))
    return torch.from_numpy(points.astype(np.float32)), torch.from_numpy(modes.astype(np.int64))


class ToyStream:
    """Infinite iterator over this process's local batches of toy 2D points."""

    def __init__(self, cfg: ExperimentConfig, rank: int, world_size: int):
        data = cfg.data
        self.name = data.path
        self.rank, self.world_size = rank, world_size
        self.local_batch = cfg.local_batch(world_size)
        self.seed = cfg.train.seed
        self.shuffle = data.shuffle_buffer > 0
        self.points, self.modes = toy_points(self.name, data.toy_samples, self.seed)
        modes = len(toy_modes(self.name)[0])
        if 0 < cfg.model.num_classes < modes:  # a mode label past the class table would crash the embedding
            raise DataError(
                f"model.num_classes={cfg.model.num_classes}: toy data {self.name!r} labels each point with its "
                f"mode, 0..{modes - 1}; valid: model.num_classes >= {modes} (or 0, unconditional)"
            )
        if data.toy_samples < world_size:
            raise DataError(
                f"data.toy_samples={data.toy_samples} leaves some of the {world_size} processes "
                f"without examples; valid: >= {world_size}"
            )
        self.epoch, self.index, self.examples_consumed = 0, 0, 0
        self.resplit: tuple[int, list] | None = None  # (epoch, layers): see resplit.py
        self._order_epoch, self._order = -1, np.empty(0, dtype=np.int64)

    def _share(self, epoch: int) -> np.ndarray:
        """Indices into the dataset that this process visits in `epoch`, in order."""
        if epoch != self._order_epoch:
            n = len(self.points)
            perm = np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else np.arange(n)
            if self.resplit is not None and epoch == self.resplit[0]:  # the world size changed in it
                rows = resplit_rows(
                    lambda r, world: perm[r::world], self.resplit[1], self.rank, self.world_size
                )
                self._order = np.fromiter(rows, dtype=np.int64)
            else:
                self._order = perm[self.rank :: self.world_size]
            self._order_epoch = epoch
        return self._order

    def __iter__(self) -> ToyStream:
        return self

    def __next__(self) -> Batch:
        picked: list[np.ndarray] = []
        needed = self.local_batch
        while needed > 0:
            share = self._share(self.epoch)
            take = share[self.index : self.index + needed]
            picked.append(take)
            needed -= len(take)
            self.index += len(take)
            if self.index >= len(share):
                self.epoch, self.index = self.epoch + 1, 0
        idx = torch.from_numpy(np.concatenate(picked))
        self.examples_consumed += self.local_batch
        return Batch(images=self.points[idx], labels=self.modes[idx])

    def state_dict(self) -> dict:
        return {
            "source": "toy",
            "path": self.name,
            "rank": self.rank,
            "world_size": self.world_size,
            "epoch": self.epoch,
            "index": self.index,
            "examples_consumed": self.examples_consumed,
            "skipped_examples": 0,
            **({"resplit": self.resplit[1]} if self.resplit and self.resplit[0] == self.epoch else {}),
        }

    def load_resharded(self, states: list[dict]) -> None:
        """Continue from the positions of a run with another number of processes (resplit.py)."""
        epoch, layers = next_layers(states)
        self.epoch, self.index, self.resplit = epoch, 0, (epoch, layers)
        self.examples_consumed = summed_counter(states, "examples_consumed", self.rank)
        self._order_epoch = -1

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])
        self.examples_consumed = int(state["examples_consumed"])
        self.resplit = (self.epoch, state["resplit"]) if state.get("resplit") else None
        self._order_epoch = -1
        if (state.get("world_size"), state.get("rank")) != (self.world_size, self.rank):
            warnings.warn(
                f"toy data position was saved for rank {state.get('rank')}/{state.get('world_size')}, this "
                f"run is rank {self.rank}/{self.world_size}: the data restarts at the beginning of epoch "
                f"{self.epoch}",
                stacklevel=2,
            )
            self.index = 0

    @property
    def stats(self) -> dict:
        return {"epoch": self.epoch, "skipped_examples": 0}

    def describe(self) -> str:
        return (
            f"data: toy {self.name} ({len(self.points)} points/epoch, seed {self.seed}), "
            f"rank {self.rank}/{self.world_size} takes every {self.world_size}-th point of each "
            f"epoch's permutation, local batch {self.local_batch}"
        )

    def close(self) -> None:
        pass


def toy_real_examples(cfg: ExperimentConfig, num: int) -> Batch:
    """The first `num` points of the toy dataset (file order, no shuffle)."""
    total = max(num, cfg.data.toy_samples)
    points, modes = toy_points(cfg.data.path, total, cfg.train.seed)
    return Batch(images=points[:num], labels=modes[:num])


def check_toy(data: DataConfig, prefix: str = "data") -> None:
    if data.path not in TOY_DATASETS:
        raise ConfigError(
            f"{prefix}.path: toy dataset must be one of {list(TOY_DATASETS)}, got {data.path!r}"
        )


# Points, not rows of images: the toy source has its own stream (ToyStream), so nothing to open.
SOURCES.register("toy", DataSource(None, check=check_toy, labelled=True))
