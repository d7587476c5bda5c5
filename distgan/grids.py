"""Turn generated samples into pictures people look at: image grids and 2D scatter plots.

Pure numpy/PIL: no training, no logging here.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from distgan.files import write_atomic


def to_uint8_images(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> (N, H, W, C) uint8 in 0..255 (the sample-file contract)."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def image_grid(images: torch.Tensor, padding: int = 2, cols: int | None = None) -> np.ndarray:
    """Tile (N, C, H, W) images in [-1, 1] into one (rows*H, cols*W, 3) uint8 picture, row by row
    (cols: images per row; default the smallest square that holds them)."""
    tiles = to_uint8_images(images)
    n, h, w, c = tiles.shape
    if c == 1:
        tiles = np.repeat(tiles, 3, axis=3)
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.zeros((rows * (h + padding) + padding, cols * (w + padding) + padding, 3), np.uint8)
    for i in range(n):
        r, col = divmod(i, cols)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y : y + h, x : x + w] = tiles[i]
    return grid


def scatter_plot(points: torch.Tensor, size: int = 400, extent: float | None = None) -> np.ndarray:
    """Draw 2D points as dots on a white square (for toy datasets)."""
    pts = points.detach().float().cpu().numpy()
    extent = extent or float(max(np.abs(pts).max(), 1.0) * 1.1)
    canvas = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(canvas)
    mid = size / 2
    draw.line([(0, mid), (size, mid)], fill=(220, 220, 220))
    draw.line([(mid, 0), (mid, size)], fill=(220, 220, 220))
    scale = (size / 2) / extent
    for x, y in pts:
        px, py = mid + x * scale, mid - y * scale
        draw.ellipse([px - 1.5, py - 1.5, px + 1.5, py + 1.5], fill=(30, 80, 200))
    return np.asarray(canvas)


def samples_picture(samples: torch.Tensor, num_classes: int = 0) -> np.ndarray:
    """A grid for images, a scatter plot for 2D points. Samples of a conditional model, whose labels
    cycle 0..K-1, get K images per row: one column per class."""
    if samples.dim() == 2:
        return scatter_plot(samples)
    return image_grid(samples, cols=num_classes or None)


def save_png(picture: np.ndarray, path: str | Path) -> Path:
    """Write atomically so a viewer never sees half a PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    write_atomic(path, buffer.getvalue())
    return path


def save_gif(frames: list[np.ndarray], path: str | Path, frame_ms: int = 80) -> Path:
    """Write (H, W, 3) uint8 frames as a looping animated GIF (Pillow), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    first, *rest = [Image.fromarray(frame) for frame in frames]
    first.save(buffer, format="GIF", save_all=True, append_images=rest, duration=frame_ms, loop=0)
    write_atomic(path, buffer.getvalue())
    return path
