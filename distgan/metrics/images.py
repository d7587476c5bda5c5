"""Generated samples as the FID networks expect them: 8-bit RGB, as if saved as PNG files."""

from __future__ import annotations

import torch

from distgan.metrics.errors import MetricsError


def as_8bit_rgb(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(N, 1|3, H, W) samples in [-1, 1] -> uint8 (N, 3, H, W) on `device` (grey repeated to RGB)."""
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise MetricsError(f"inception extractor needs images (N, 1|3, H, W), got shape {tuple(x.shape)}")
    images = ((x.float() + 1) * 127.5).round().clamp(0, 255).to(device, torch.uint8)
    return images.repeat(1, 3, 1, 1) if images.shape[1] == 1 else images
