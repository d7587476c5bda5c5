"""A disconnected latent space: the generator's standard-normal input becomes a mixture of K Gaussians.

A continuous generator maps a connected latent space onto a connected set, so a generator fed plain
N(0, I) must put some mass on "bridges" between separated modes (Khayatkhoei et al. 2018,
*Disconnected Manifold Learning for GANs*). A mixture of K well-separated Gaussians in latent space
(DeLiGAN, Gurumurthy et al. 2017; BourGAN, Xiao et al. 2018) lets each component land on one mode with
no bridge between them. K is chosen independent of the data: with K well above the number of modes,
each mode takes a whole number of components and the balance is within 1/K.

The map is deterministic in the standard-normal latent z, so every user of `Generator.latent()`
(training, sampling, evaluation, EMA) is unchanged. u = Phi(z_0) is uniform: its bucket
k = floor(u K) picks the component and its position inside the bucket, frac(u K), is again uniform
and independent of k, so e = (Phi^-1(frac(u K)), z_1, ..., z_{D-1}) is N(0, I) and independent of k.
The generator's input is centre_k + std * e: exactly N(centre_k, std^2 I) for each component. The
centres are a fixed draw from a constant seed (every process builds the same), kept as a buffer so
checkpoints carry them.
"""

from __future__ import annotations

import torch
from torch import nn

CENTRES_SEED = 0x6D6978  # fixed: the centres are part of the architecture, not of a training seed
EDGE = 1e-6  # keeps Phi^-1 of the in-bucket position finite (|e_0| <= 4.75)


class MixtureLatent(nn.Module):
    def __init__(self, latent_dim: int, components: int, component_std: float) -> None:
        super().__init__()
        self.components, self.component_std = components, component_std
        rng = torch.Generator().manual_seed(CENTRES_SEED)
        self.register_buffer("centres", torch.randn(components, latent_dim, generator=rng))

    def split(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(component index (N,), standard-normal offset (N, D)) of standard-normal latents."""
        scaled = torch.special.ndtr(latent[:, 0].double()) * self.components
        component = scaled.floor().clamp_(0, self.components - 1)
        inside = (scaled - component).clamp_(EDGE, 1 - EDGE)
        offset = torch.cat([torch.special.ndtri(inside)[:, None].to(latent.dtype), latent[:, 1:]], dim=1)
        return component.long(), offset

    def join(self, component: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        """The standard-normal latent that `split` takes apart into (component, offset)."""
        inside = torch.special.ndtr(offset[:, 0].double()).clamp(EDGE, 1 - EDGE)
        first = torch.special.ndtri((component.double() + inside) / self.components)
        return torch.cat([first[:, None].to(offset.dtype), offset[:, 1:]], dim=1)

    def truncate(self, latent: torch.Tensor, psi: float) -> torch.Tensor:
        """The truncation trick inside each component: the offset shrinks by psi, the component stays."""
        component, offset = self.split(latent)
        return self.join(component, offset * psi)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        component, offset = self.split(latent)
        return self.centres[component].to(latent.dtype) + self.component_std * offset
