"""distgan: train GANs on one CPU, one GPU, many GPUs and many nodes with the same config file."""

from __future__ import annotations

__version__ = "0.1.0"


def load_generator(path, ema: bool = True, device: str = "cpu"):
    """Load a trained generator (eval mode, EMA weights when present). See distgan.generation."""
    from distgan.generation import load_generator as _load

    return _load(path, ema=ema, device=device)


__all__ = ["load_generator", "__version__"]
