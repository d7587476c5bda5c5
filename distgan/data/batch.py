"""Batch: what a data stream yields. Only the container lives here; nothing is loaded.

The shape of one sample for a config is `ExperimentConfig.sample_shape`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


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
