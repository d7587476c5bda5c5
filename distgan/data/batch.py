"""Batch: what a data stream yields, and the shape of one sample for a config.

Only the container and the shape rule live here; nothing is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from distgan.config import ExperimentConfig


@dataclass
class Batch:
    """One process's local batch.

    images: float32. Images: (B, C, H, W) in [-1, 1]. Toy 2D data: (B, 2) raw coordinates
            (ring8 within radius ~2.1, grid25 within ~[-4.2, 4.2]).
    labels: int64 (B,), or None when the config asks for no labels (data.label_column is None);
            always present for the embedded MNIST (digit) and toy data (mode index).
    """

    images: torch.Tensor
    labels: torch.Tensor | None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def to(self, device: torch.device | str, non_blocking: bool = True) -> Batch:
        """Move to `device` (asynchronous from pinned memory on GPU; a no-op copy on CPU)."""
        labels = None if self.labels is None else self.labels.to(device, non_blocking=non_blocking)
        return Batch(self.images.to(device, non_blocking=non_blocking), labels)


def sample_shape(cfg: ExperimentConfig) -> tuple[int, ...]:
    """Shape of one real sample: (2,) for toy 2D data, else (channels, resolution, resolution)."""
    if cfg.data.is_toy:
        return (2,)
    return (cfg.model.channels, cfg.data.resolution, cfg.data.resolution)
