"""What every generator offers its users: `latent_dim`, `num_classes`, `sample_shape`, `sample()`.

Imports torch only: models know nothing of how they are trained or distributed.
"""

from __future__ import annotations

import torch
from torch import nn

from distgan.models.latent_mixture import MixtureLatent


def init_weights_dcgan(module: nn.Module) -> None:
    """N(0, 0.02) weights (DCGAN paper); norm layers scale N(1, 0.02), biases 0."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            nn.init.normal_(layer.weight, 0.0, 0.02)
            if getattr(layer, "bias", None) is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
            if layer.weight is not None:
                nn.init.normal_(layer.weight, 1.0, 0.02)
                nn.init.zeros_(layer.bias)


class Generator(nn.Module):
    """Base class: subclasses implement forward(latent, labels=None). Families that accept
    `model.latent_components` (mlp, dcgan) pass it here and feed their network `self.mixed(latent)`."""

    def __init__(
        self,
        latent_dim: int,
        sample_shape: tuple[int, ...],
        num_classes: int,
        latent_components: int = 0,
        latent_component_std: float = 1.0,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.sample_shape = tuple(sample_shape)
        self.num_classes = num_classes
        self.mixture = (
            MixtureLatent(latent_dim, latent_components, latent_component_std) if latent_components else None
        )

    def mixed(self, latent: torch.Tensor) -> torch.Tensor:
        """G's input: the standard-normal latent, or its image in the mixture latent."""
        return latent if self.mixture is None else self.mixture(latent)

    @property
    def is_conditional(self) -> bool:
        return self.num_classes > 0

    def latent(self, n: int, seed: int | None = None) -> torch.Tensor:
        """`n` standard-normal latents (N, latent_dim) on the CPU; the same seed gives the same latents."""
        rng = torch.Generator(device="cpu")
        if seed is not None:
            rng.manual_seed(seed)
        else:
            rng.seed()
        return torch.randn(n, self.latent_dim, generator=rng)

    def truncate(self, latent: torch.Tensor, psi: float) -> torch.Tensor:
        """The truncation trick: latents pulled toward the typical latent by `psi` (1 = unchanged).
        A plain N(0, I) latent shrinks toward 0; a mixture latent toward each component's centre (the
        balance of components stays); generators with another structured latent override this."""
        return latent * psi if self.mixture is None else self.mixture.truncate(latent, psi)

    @torch.no_grad()
    def sample(self, n: int, labels: torch.Tensor | None = None, seed: int | None = None) -> torch.Tensor:
        """Draw `n` samples in the model's output range; labels cycle 0..K-1 when not given."""
        device = next(self.parameters()).device
        latent = self.latent(n, seed).to(device)
        if self.is_conditional and labels is None:
            labels = torch.arange(n) % self.num_classes
        if labels is not None:
            labels = torch.as_tensor(labels, dtype=torch.long).to(device)
        return self(latent, labels)


def class_embedding(num_classes: int, dim: int) -> nn.Embedding | None:
    return nn.Embedding(num_classes, dim) if num_classes > 0 else None


def require_labels(labels: torch.Tensor | None) -> torch.Tensor:
    """The labels a class-conditional model was given; a clear error when it was given none."""
    if labels is None:
        raise ValueError("this model is class-conditional: pass labels (int64, shape (N,))")
    return labels


def concat_label(features: torch.Tensor, embed: nn.Embedding | None, labels: torch.Tensor | None):
    """Concatenate a class embedding to (N, F) features of a conditional model."""
    if embed is None:
        return features
    labels = require_labels(labels)
    return torch.cat([features, embed(labels).to(features.dtype)], dim=1)
