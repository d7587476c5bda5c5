"""DCGAN for 28, 32 and 64 px, 1 or 3 channels, optionally class-conditional.

G: dense to a 7x7 (28 px) or 4x4 map, BatchNorm+ReLU, 4x4 stride-2 transposed convs, tanh.
D: 4x4 stride-2 convs with LeakyReLU(0.2), optional norm (batch | layer | none) and dropout,
one logit. Conditional models: G's input has the class embedding concatenated. D sees the label
either as `concat`: K class maps (a learned K-vector per class, constant over the image) concatenated
to the image, so its first conv relates label and pixels; or as `projection` (Miyato & Koyama 2018):
D(x, y) = linear(phi(x)) + <embed(y), phi(x)>. Both let D check that x matches y. A class term that
only adds to the logit (an embedding concatenated to phi(x)) cannot: it cancels between real and fake
of the same labels, and G learns to ignore its label.
PacGAN packing (model.pack = m, Lin et al. 2018): D scores groups of m consecutive samples, stacked on
the channel axis (with their class maps, under concat conditioning), so a G that repeats itself is
visible within one input; the projection D has no packed form (its class term is per sample).
"""

from __future__ import annotations

import torch
from torch import nn

from distgan.config import ConfigError, ModelConfig
from distgan.models.base import Generator, class_embedding, concat_label, init_weights_dcgan, require_labels
from distgan.models.family import Architecture, SampleShape, image_side, layer_groups
from distgan.registry import ARCHITECTURES

# resolution -> (side of the first feature map, number of 2x up/down-sampling convs)
LAYOUT = {28: (7, 2), 32: (4, 3), 64: (4, 4)}
DCGAN_RESOLUTIONS = tuple(LAYOUT)
EMBED_DIM = 50  # size of the class embedding in conditional models


def _layout(resolution: int) -> tuple[int, int]:
    if resolution not in LAYOUT:
        raise ValueError(f"DCGAN makes {sorted(LAYOUT)} px images, not {resolution}")
    return LAYOUT[resolution]


class DCGANGenerator(Generator):
    def __init__(
        self,
        latent_dim: int,
        channels: int,
        resolution: int,
        num_classes: int = 0,
        width: int = 64,
        latent_components: int = 0,
        latent_component_std: float = 1.0,
    ) -> None:
        shape = (channels, resolution, resolution)
        super().__init__(latent_dim, shape, num_classes, latent_components, latent_component_std)
        base, n_up = _layout(resolution)
        self.base = base
        self.base_channels = width * 2 ** (n_up - 1)
        self.embed = class_embedding(num_classes, EMBED_DIM)
        in_features = latent_dim + (EMBED_DIM if num_classes else 0)
        self.project = nn.Linear(in_features, self.base_channels * base * base, bias=False)
        layers: list[nn.Module] = [nn.BatchNorm2d(self.base_channels), nn.ReLU(True)]
        ch = self.base_channels
        for _ in range(n_up - 1):
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ch // 2),
                nn.ReLU(True),
            ]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        init_weights_dcgan(self)

    def forward(self, latent: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = self.project(concat_label(self.mixed(latent), self.embed, labels))
        return self.net(x.view(-1, self.base_channels, self.base, self.base))


def _norm(kind: str, channels: int) -> list[nn.Module]:
    if kind == "batch":
        return [nn.BatchNorm2d(channels)]
    if kind == "layer":  # per-sample normalisation over (C, H, W): safe with the gradient penalty
        return [nn.GroupNorm(1, channels)]
    return []


class DCGANDiscriminator(nn.Module):
    def __init__(
        self,
        channels: int,
        resolution: int,
        num_classes: int = 0,
        width: int = 64,
        norm: str = "none",
        dropout: float = 0.0,
        conditioning: str = "concat",
        pack: int = 1,
    ) -> None:
        super().__init__()
        base, n_down = _layout(resolution)
        self.num_classes, self.pack = num_classes, pack
        projection = num_classes > 0 and conditioning == "projection"
        # concat: a K-channel class map next to the image's channels
        self.embed = class_embedding(0 if projection else num_classes, num_classes)
        in_channels = channels + (num_classes if self.embed is not None else 0)
        layers: list[nn.Module] = [nn.Conv2d(pack * in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        ch = width
        for _ in range(n_down - 1):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=norm == "none"), *_norm(norm, ch * 2)]
            layers.append(nn.LeakyReLU(0.2, True))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            ch *= 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(ch * base * base, 1)
        self.projection = class_embedding(num_classes if projection else 0, ch * base * base)
        init_weights_dcgan(self)
        if self.embed is not None:  # one-hot class maps to start with, on the images' scale
            nn.init.eye_(self.embed.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:
            labels = require_labels(labels)
        if self.embed is not None:
            class_maps = self.embed(labels).to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])
            x = torch.cat([x, class_maps], dim=1)
        if self.pack > 1:  # each group of `pack` consecutive samples becomes one input
            if x.shape[0] % self.pack:
                raise ValueError(f"batch {x.shape[0]} is not divisible by model.pack={self.pack}")
            x = x.reshape(x.shape[0] // self.pack, self.pack * x.shape[1], *x.shape[2:])
        features = self.features(x).flatten(1)
        logit = self.head(features).squeeze(1)
        if self.projection is None:
            return logit
        return logit + (self.projection(labels).to(features.dtype) * features).sum(dim=1)


def check_shape(model: ModelConfig, shape: SampleShape) -> None:
    image_side("dcgan", shape, DCGAN_RESOLUTIONS)
    if model.pack > 1 and model.num_classes > 0 and model.conditioning == "projection":
        raise ConfigError(
            "model.pack: the projection D scores each sample's class separately and cannot pack; valid: "
            f"model.pack=1, or model.conditioning=concat; got model.pack={model.pack}"
        )


def build_generator(model: ModelConfig, shape: SampleShape) -> DCGANGenerator:
    channels, resolution = shape[0], shape[-1]
    return DCGANGenerator(
        model.latent_dim,
        channels,
        resolution,
        model.num_classes,
        model.g_width,
        model.latent_components,
        model.latent_component_std,
    )


def build_discriminator(model: ModelConfig, shape: SampleShape) -> DCGANDiscriminator:
    channels, resolution = shape[0], shape[-1]
    return DCGANDiscriminator(
        channels,
        resolution,
        model.num_classes,
        model.d_width,
        model.d_norm,
        model.d_dropout,
        model.conditioning,
        model.pack,
    )


def discriminator_blocks(discriminator: DCGANDiscriminator) -> list[nn.Module]:
    """Each stride-2 conv with its norm, from the image on (the class maps and the head are not blocks)."""
    return layer_groups(discriminator.features, (nn.Conv2d,))


ARCHITECTURES.register(
    "dcgan",
    Architecture(
        build_generator,
        build_discriminator,
        options=frozenset({"d_norm", "d_dropout", "pack", "latent_components"}),
        conditionings=("concat", "projection"),
        check_shape=check_shape,
        discriminator_blocks=discriminator_blocks,
    ),
)
