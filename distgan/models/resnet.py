"""SN-ResNet G and D (SNGAN / BigGAN style) for 32, 64, 128 and 256 px, optionally class-conditional.

G: latent -> linear -> 4x4 map -> one up block per doubling -> BN-ReLU-conv3x3-tanh.
D: down blocks to 4x4 (8x8 at 32 px, as SNGAN's CIFAR D), one block at constant size, ReLU,
global sum pooling, a linear logit. Widths are `width x multiplier`, one multiplier per stage
(tables below: BigGAN's ch x [16, 8, 4, 2, 1] pattern; SNGAN's uniform widths at 32 px).
Conditional models: class-conditional BatchNorm in G and a projection term in D (Miyato &
Koyama 2018): D(x, y) = linear(phi(x)) + <embed(y), phi(x)>.
`attention_side`: a SAGAN self-attention block after the block whose output has that side.
Spectral norm is applied by `models.build_generator` / `build_discriminator` (`models.spectral`).
Imports torch, the model section and the registry only.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from distgan.config import ConfigError, ModelConfig
from distgan.models.base import Generator, require_labels
from distgan.models.family import Architecture, SampleShape, image_side
from distgan.models.resnet_blocks import (
    DiscriminatorBlock,
    GeneratorBlock,
    SelfAttention,
)
from distgan.registry import ARCHITECTURES

# resolution -> channel multiplier of G's feature map at 4, 8, 16, ... px up to the resolution
G_MULTIPLIERS = {
    32: (4, 4, 4, 4),
    64: (16, 8, 4, 2, 1),
    128: (16, 16, 8, 4, 2, 1),
    256: (16, 16, 8, 8, 4, 2, 1),
}
# resolution -> (channel multiplier, halves the side?) of each D block, from the image inwards
D_BLOCKS = {
    32: ((2, True), (2, True), (2, False), (2, False)),
    64: ((1, True), (2, True), (4, True), (8, True), (16, False)),
    128: ((1, True), (2, True), (4, True), (8, True), (16, True), (16, False)),
    256: ((1, True), (2, True), (4, True), (8, True), (8, True), (16, True), (16, False)),
}
RESNET_RESOLUTIONS = tuple(G_MULTIPLIERS)


def _tables(resolution: int) -> tuple[tuple[int, ...], tuple[tuple[int, bool], ...]]:
    if resolution not in G_MULTIPLIERS:
        raise ValueError(f"the resnet makes {sorted(G_MULTIPLIERS)} px images, not {resolution}")
    return G_MULTIPLIERS[resolution], D_BLOCKS[resolution]


def init_weights_orthogonal(module: nn.Module) -> None:
    """Orthogonal conv/linear weights and zero biases (BigGAN's and StudioGAN's default for ResNets).

    Embeddings of conditional BatchNorm keep their identity init; D's projection embedding is
    orthogonal too. Skipped on the meta device (shapes only: distgan.memory_check).
    """
    for name, layer in module.named_modules():
        is_projection = isinstance(layer, nn.Embedding) and name.endswith("projection")
        if isinstance(layer, (nn.Conv2d, nn.Linear)) or is_projection:
            if not layer.weight.is_meta:
                nn.init.orthogonal_(layer.weight)
            if getattr(layer, "bias", None) is not None:
                nn.init.zeros_(layer.bias)


class ResNetGenerator(Generator):
    def __init__(
        self,
        latent_dim: int,
        channels: int,
        resolution: int,
        num_classes: int = 0,
        width: int = 64,
        attention_side: int = 0,
    ) -> None:
        super().__init__(latent_dim, (channels, resolution, resolution), num_classes)
        multipliers, _ = _tables(resolution)
        widths = [width * m for m in multipliers]
        self.base_channels = widths[0]
        self.project = nn.Linear(latent_dim, widths[0] * 4 * 4)
        self.blocks = nn.ModuleList()
        self.attention = nn.ModuleDict()  # {block index: attention after that block}
        side = 4
        for i, (c_in, c_out) in enumerate(itertools.pairwise(widths)):
            self.blocks.append(GeneratorBlock(c_in, c_out, num_classes))
            side *= 2
            if side == attention_side:
                self.attention[str(i)] = SelfAttention(c_out)
        self.out_norm = nn.BatchNorm2d(widths[-1])
        self.out_conv = nn.Conv2d(widths[-1], channels, 3, padding=1)
        init_weights_orthogonal(self)

    def forward(self, latent: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.is_conditional:
            labels = require_labels(labels)
        x = self.project(latent).view(-1, self.base_channels, 4, 4)
        for i, block in enumerate(self.blocks):
            x = block(x, labels)
            if str(i) in self.attention:
                x = self.attention[str(i)](x)
        return torch.tanh(self.out_conv(torch.relu(self.out_norm(x))))


class ResNetDiscriminator(nn.Module):
    def __init__(
        self,
        channels: int,
        resolution: int,
        num_classes: int = 0,
        width: int = 64,
        attention_side: int = 0,
    ) -> None:
        super().__init__()
        _, blocks = _tables(resolution)
        self.num_classes = num_classes
        self.blocks = nn.ModuleList()
        self.attention = nn.ModuleDict()  # {block index: attention after that block}
        c_in, side = channels, resolution
        for i, (multiplier, downsample) in enumerate(blocks):
            c_out = width * multiplier
            self.blocks.append(DiscriminatorBlock(c_in, c_out, downsample, first=i == 0))
            side //= 2 if downsample else 1
            if side == attention_side and not self.attention:  # once: the first block at that side
                self.attention[str(i)] = SelfAttention(c_out)
            c_in = c_out
        self.head = nn.Linear(c_in, 1)
        # Projection discriminator: the class term <embed(y), features> (Miyato & Koyama 2018)
        self.projection = nn.Embedding(num_classes, c_in) if num_classes else None
        init_weights_orthogonal(self)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        for i, block in enumerate(self.blocks):
            x = block(x)
            if str(i) in self.attention:
                x = self.attention[str(i)](x)
        features = torch.relu(x).sum(dim=(2, 3))  # global sum pooling (SNGAN)
        logit = self.head(features).squeeze(1)
        if self.projection is None:
            return logit
        return logit + (self.projection(require_labels(labels)).to(features.dtype) * features).sum(dim=1)


def check_shape(model: ModelConfig, shape: SampleShape) -> None:
    resolution = image_side("resnet", shape, RESNET_RESOLUTIONS)
    # G's blocks output 8..resolution px and D's resolution/2..4 px: attention fits where both have a block.
    sides = [2**k for k in range(3, resolution.bit_length() - 1)]  # 8 .. resolution/2
    if model.attention_res and model.attention_res not in sides:
        raise ConfigError(
            f"model.attention_res: at data.resolution={resolution} valid: 0 (off) or one of {sides}, "
            f"got {model.attention_res}"
        )


def build_generator(model: ModelConfig, shape: SampleShape) -> ResNetGenerator:
    channels, resolution = shape[0], shape[-1]
    return ResNetGenerator(
        model.latent_dim, channels, resolution, model.num_classes, model.g_width, model.attention_res
    )


def build_discriminator(model: ModelConfig, shape: SampleShape) -> ResNetDiscriminator:
    channels, resolution = shape[0], shape[-1]
    return ResNetDiscriminator(channels, resolution, model.num_classes, model.d_width, model.attention_res)


def discriminator_blocks(discriminator: ResNetDiscriminator) -> list[nn.Module]:
    """Each residual block, with the self-attention that follows it, from the image on."""
    attention = discriminator.attention
    return [
        nn.ModuleList([block, *([attention[str(i)]] if str(i) in attention else [])])
        for i, block in enumerate(discriminator.blocks)
    ]


# The SN-ResNet D has no normalisation layers and no dropout; a conditional one uses projection.
ARCHITECTURES.register(
    "resnet",
    Architecture(
        build_generator,
        build_discriminator,
        options=frozenset({"attention_res"}),
        conditionings=("projection",),
        check_shape=check_shape,
        discriminator_blocks=discriminator_blocks,
    ),
)
