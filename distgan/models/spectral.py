"""Spectral normalization of a finished network (Miyato et al. 2018) with torch's parametrization.

Every conv, transposed conv and linear weight, and D's class projection, is divided by its largest
singular value, estimated by one power-iteration step per training forward. The estimate's
vectors are buffers (`parametrizations.weight.0._u` / `._v`) saved with the weights; the weight
itself is stored as `parametrizations.weight.original`. Class-conditional BatchNorm embeddings
stay as they are (their gains start at 1, a normalised table would not). Imports torch only.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def apply_spectral_norm(model: nn.Module) -> nn.Module:
    """Parametrize `model`'s weights in place; returns it."""
    targets = [
        layer
        for name, layer in model.named_modules()
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))
        or (isinstance(layer, nn.Embedding) and name.split(".")[-1] == "projection")
    ]
    for layer in targets:  # collected first: parametrizing adds modules to the tree being walked
        spectral_norm(layer)
    return model


def spectral_norm_targets(option: str) -> tuple[bool, bool]:
    """model.spectral_norm -> (normalise G, normalise D)."""
    return option in ("g", "both"), option in ("d", "both")
