"""StyleGAN2 (Karras et al. 2020) for 32 to 1024 px: skip generator and residual discriminator.

G: z -> mapping network -> w (one per synthesis layer: `num_ws`) -> synthesis from a learned 4x4
constant, two modulated 3x3 convs per resolution with per-pixel noise, each resolution's toRGB output
added to the up-sampled image so far. Images are not squashed: trained on data in [-1, 1], they are
clamped to it when saved. The running average w (`w_avg`) is the truncation trick's centre.
D: fromRGB at full resolution, residual blocks (two 3x3 convs, the second down-sampling, plus a 1x1
down-sampling skip, summed with gain sqrt(1/2)), then minibatch std, a 3x3 conv, two dense layers.
Conditional: G embeds the one-hot label next to z; D maps it to a vector whose dot product with D's
output features is the logit (a projection discriminator).
Channels at resolution r: min(channel_base // r, channel_max), as the official configurations.
The top `reduced_precision_res` resolutions of both networks follow the caller's autocast (bf16 or
fp16); the rest, the mapping network and D's last block always run in float32.

Imports torch, its layers and the model registry: models know nothing of how they are trained or
distributed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from distgan.models.base import Generator, require_labels
from distgan.models.family import Architecture, image_side
from distgan.models.stylegan2_layers import (
    EqualizedConv2d,
    EqualizedLinear,
    MappingNetwork,
    MinibatchStd,
    StyledConv,
    ToRGB,
    autocast_enabled,
    block_precision,
    fir_kernel,
    float32_region,
    upsample_2x,
)
from distgan.registry import ARCHITECTURES

STYLEGAN2_RESOLUTIONS = (32, 64, 128, 256, 512, 1024)
D_LABEL_MAPPING_LAYERS = 8  # D's label mapping keeps the official default depth whatever G's depth
RESIDUAL_GAIN = math.sqrt(0.5)  # a residual sum of two unit-variance branches stays unit variance


def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    """Feature maps at a resolution, as the official configurations compute them."""
    return min(channel_base // resolution, channel_max)


def resolutions_up_to(resolution: int) -> list[int]:
    """4, 8, ..., resolution; a clear error for a side StyleGAN2 does not make."""
    if resolution not in STYLEGAN2_RESOLUTIONS:
        raise ValueError(f"stylegan2 makes {list(STYLEGAN2_RESOLUTIONS)} px images, not {resolution}")
    return [2**i for i in range(2, int(math.log2(resolution)) + 1)]


def _reduced_from(resolution: int, reduced_precision_res: int) -> int:
    """The lowest resolution whose block runs in reduced precision (above the top one: none)."""
    return max(2 ** (int(math.log2(resolution)) + 1 - reduced_precision_res), 8)


def _clamp(conv_clamp: float) -> float | None:
    return conv_clamp if conv_clamp > 0 else None


class SynthesisBlock(nn.Module):
    """One resolution of G: (constant | 2x up conv), conv, toRGB. Uses 2 or 1 (4x4) w's plus one
    for toRGB, which is the next block's first w (the official indexing)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        image_channels: int,
        conv_clamp: float | None,
        reduced_precision: bool,
    ) -> None:
        super().__init__()
        self.reduced_precision = reduced_precision
        self.const = nn.Parameter(torch.randn(out_channels, 4, 4)) if in_channels == 0 else None
        self.conv0 = None
        if in_channels:
            self.conv0 = StyledConv(
                in_channels, out_channels, w_dim, resolution, up=True, conv_clamp=conv_clamp
            )
        self.conv1 = StyledConv(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp)
        self.to_rgb = ToRGB(out_channels, image_channels, w_dim, conv_clamp)
        self.num_conv = 1 if in_channels == 0 else 2
        self.register_buffer("fir", fir_kernel(), persistent=False)

    def forward(self, x, image, ws: torch.Tensor, noise_mode: str, noise=(None, None)):
        """`noise`: the block's noise maps (one per conv), given instead of drawn, or Nones."""
        with block_precision(self.reduced_precision, ws.device.type):
            pre_normalize = self.reduced_precision and autocast_enabled(ws.device.type)
            if self.const is not None:
                x = self.const[None].expand(ws.shape[0], -1, -1, -1)
            else:
                x = x if self.reduced_precision else x.float()
                x = self.conv0(x, ws[:, 0], noise_mode, pre_normalize, noise[0])
            x = self.conv1(x, ws[:, self.num_conv - 1], noise_mode, pre_normalize, noise[-1])
            rgb = self.to_rgb(x, ws[:, self.num_conv]).float()
        with float32_region(ws.device.type):  # the image itself stays float32
            image = rgb if image is None else upsample_2x(image, self.fir) + rgb
        return x, image


class SynthesisNetwork(nn.Module):
    def __init__(
        self,
        w_dim: int,
        resolution: int,
        image_channels: int,
        channel_base: int,
        channel_max: int,
        conv_clamp: float | None,
        reduced_precision_res: int,
    ) -> None:
        super().__init__()
        reduced_from = _reduced_from(resolution, reduced_precision_res)
        self.blocks = nn.ModuleList()
        for res in resolutions_up_to(resolution):
            in_channels = channels_at(res // 2, channel_base, channel_max) if res > 4 else 0
            out_channels = channels_at(res, channel_base, channel_max)
            self.blocks.append(
                SynthesisBlock(
                    in_channels, out_channels, w_dim, res, image_channels, conv_clamp, res >= reduced_from
                )
            )
        self.num_ws = sum(block.num_conv for block in self.blocks) + 1
        # the side of each noise map, in the order the styled convs run
        self.noise_sides = [block.conv1.resolution for block in self.blocks for _ in range(block.num_conv)]

    def forward(self, ws: torch.Tensor, noise_mode: str, noise=None) -> torch.Tensor:
        """`noise`: every styled conv's noise map in `noise_sides` order, given instead of drawn."""
        x = image = None
        first = 0
        for block in self.blocks:
            block_noise = (None, None) if noise is None else noise[first : first + block.num_conv]
            x, image = block(x, image, ws[:, first : first + block.num_conv + 1], noise_mode, block_noise)
            first += block.num_conv
        return image


@dataclass(frozen=True)
class StyleDraws:
    """The random inputs of one training forward, given instead of drawn: an equivalence test fixes
    them for the global batch and hands each process its rows. Without them G draws its own from
    the process's RNG, as the phases draw latents."""

    mixing_latent: torch.Tensor  # (N, latent_dim): the second z of style mixing
    cutoff: int  # the first layer whose w comes from mixing_latent; num_ws: no mixing
    noise: tuple[torch.Tensor, ...]  # (N, 1, side, side) per styled conv, in the synthesis order

    def select(self, rows: slice) -> StyleDraws:
        """The draws of a part of the batch (a process's rows, a micro-batch)."""
        return StyleDraws(self.mixing_latent[rows], self.cutoff, tuple(n[rows] for n in self.noise))

    def to(self, device) -> StyleDraws:
        return StyleDraws(self.mixing_latent.to(device), self.cutoff, tuple(n.to(device) for n in self.noise))


class StyleGAN2Generator(Generator):
    """forward(latent, labels=None): latent is z (N, latent_dim) or w's (N, num_ws, w_dim).

    Training mode: random noise, w_avg tracked, style mixing with probability `style_mixing` (the
    w's from a layer drawn at random on come from a second z). Eval mode: the fixed noise maps, so
    the same latent always gives the same image."""

    def __init__(
        self,
        latent_dim: int,
        sample_shape: tuple[int, int, int],
        num_classes: int = 0,
        w_dim: int = 512,
        mapping_layers: int = 8,
        channel_base: int = 32768,
        channel_max: int = 512,
        conv_clamp: float = 256.0,
        reduced_precision_res: int = 4,
        style_mixing: float = 0.9,
        w_avg_beta: float = 0.995,
    ) -> None:
        super().__init__(latent_dim, sample_shape, num_classes)
        image_channels, resolution, _ = sample_shape
        self.style_mixing = style_mixing
        self.synthesis = SynthesisNetwork(
            w_dim,
            resolution,
            image_channels,
            channel_base,
            channel_max,
            _clamp(conv_clamp),
            reduced_precision_res,
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(latent_dim, num_classes, w_dim, mapping_layers, w_avg_beta=w_avg_beta)

    def w_latents(
        self, latent: torch.Tensor, labels: torch.Tensor | None = None, draws: StyleDraws | None = None
    ) -> torch.Tensor:
        """(N, num_ws, w_dim): the mapped latents, style-mixed in training mode."""
        if self.is_conditional:
            labels = require_labels(labels)
        with float32_region(latent.device.type):
            w = self.mapping(latent, labels, update_w_avg=self.training)
            ws = w[:, None].repeat(1, self.num_ws, 1)
            if self.training and self.style_mixing > 0:
                ws = self._mix(ws, latent, labels, draws)
        return ws

    def _mix(self, ws: torch.Tensor, latent: torch.Tensor, labels, draws: StyleDraws | None) -> torch.Tensor:
        """From a cutoff layer drawn in 1..num_ws-1 on, w's of a fresh z (probability style_mixing;
        else no cutoff). Drawn on the device, without a host sync; or the given draws'."""
        device = ws.device
        if draws is not None:
            cutoff, second = draws.cutoff, draws.mixing_latent.to(device)
        else:
            cutoff = torch.randint(1, self.num_ws, (), device=device)
            cutoff = torch.where(torch.rand((), device=device) < self.style_mixing, cutoff, self.num_ws)
            second = torch.randn_like(latent)
        other = self.mapping(second, labels)[:, None]
        mixed = (torch.arange(self.num_ws, device=device) >= cutoff)[None, :, None]
        return torch.where(mixed, other, ws)

    def draw(self, count: int, generator: torch.Generator | None = None) -> StyleDraws:
        """A training forward's random inputs for `count` images, from `generator` (on the CPU),
        with the distribution G's own draws have."""
        cutoff = int(torch.randint(1, self.num_ws, (), generator=generator))
        cutoff = cutoff if float(torch.rand((), generator=generator)) < self.style_mixing else self.num_ws
        return StyleDraws(
            torch.randn(count, self.latent_dim, generator=generator),
            cutoff,
            tuple(torch.randn(count, 1, s, s, generator=generator) for s in self.synthesis.noise_sides),
        )

    def forward(
        self,
        latent: torch.Tensor,
        labels: torch.Tensor | None = None,
        return_ws: bool = False,
        draws: StyleDraws | None = None,
    ):
        """Images (N, C, H, W); with `return_ws`, (images, w's): the path-length penalty differentiates
        the images with respect to the w's. `draws`: style mixing and noise given, not drawn."""
        ws = latent if latent.dim() == 3 else self.w_latents(latent, labels, draws)
        noise = None if draws is None else draws.noise
        images = self.synthesis(ws, "random" if self.training else "const", noise)
        return (images, ws) if return_ws else images

    @torch.no_grad()
    def truncate(self, latent: torch.Tensor, psi: float, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The truncation trick in W: w's pulled toward the tracked average w by `psi` (1 = the latent
        unchanged). Returns w's (N, num_ws, w_dim), which forward takes in place of z."""
        if psi == 1:
            return latent
        if latent.dim() == 2:
            device = self.mapping.w_avg.device
            if self.is_conditional:
                labels = require_labels(labels).to(device)
            w = self.mapping(latent.to(device), labels)
            latent = w[:, None].repeat(1, self.num_ws, 1).to(latent.device)
        return self.mapping.w_avg.to(latent.device).lerp(latent, psi)


class DiscriminatorBlock(nn.Module):
    """One resolution of D: (fromRGB on the image), 3x3 conv, 3x3 conv with 2x down-sampling, and in
    the residual form a 1x1 down-sampling skip; the sum is scaled by sqrt(1/2)."""

    def __init__(
        self,
        in_channels: int,
        tmp_channels: int,
        out_channels: int,
        image_channels: int,
        residual: bool,
        conv_clamp: float | None,
        reduced_precision: bool,
    ) -> None:
        super().__init__()
        self.reduced_precision = reduced_precision
        self.from_rgb = None
        if in_channels == 0:
            self.from_rgb = EqualizedConv2d(image_channels, tmp_channels, 1, conv_clamp=conv_clamp)
        self.conv0 = EqualizedConv2d(tmp_channels, tmp_channels, 3, conv_clamp=conv_clamp)
        self.conv1 = EqualizedConv2d(tmp_channels, out_channels, 3, down=True, conv_clamp=conv_clamp)
        self.skip = None
        if residual:
            self.skip = EqualizedConv2d(tmp_channels, out_channels, 1, bias=False, leaky=False, down=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with block_precision(self.reduced_precision, x.device.type):
            x = x if self.reduced_precision else x.float()
            if self.from_rgb is not None:
                x = self.from_rgb(x)
            if self.skip is None:
                return self.conv1(self.conv0(x))
            return self.skip(x, gain=RESIDUAL_GAIN) + self.conv1(self.conv0(x), gain=RESIDUAL_GAIN)


class DiscriminatorEpilogue(nn.Module):
    """4x4 features -> minibatch std -> 3x3 conv -> dense -> one logit (or a cmap_dim vector)."""

    def __init__(self, channels: int, cmap_dim: int, mbstd_group: int, conv_clamp: float | None) -> None:
        super().__init__()
        self.mbstd = MinibatchStd(mbstd_group)
        self.conv = EqualizedConv2d(channels + 1, channels, 3, conv_clamp=conv_clamp)
        self.fc = EqualizedLinear(channels * 16, channels, leaky=True)
        self.out = EqualizedLinear(channels, cmap_dim or 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.mbstd(x.float()))
        return self.out(self.fc(x.flatten(1)))


class StyleGAN2Discriminator(nn.Module):
    """forward(images, labels=None) -> (N,) logits. `blocks` run from the input resolution down."""

    def __init__(
        self,
        sample_shape: tuple[int, int, int],
        num_classes: int = 0,
        channel_base: int = 32768,
        channel_max: int = 512,
        mbstd_group: int = 4,
        residual: bool = True,
        conv_clamp: float = 256.0,
        reduced_precision_res: int = 4,
    ) -> None:
        super().__init__()
        image_channels, resolution, _ = sample_shape
        self.num_classes = num_classes
        clamp = _clamp(conv_clamp)
        reduced_from = _reduced_from(resolution, reduced_precision_res)
        self.blocks = nn.ModuleList()
        for res in reversed(resolutions_up_to(resolution)[1:]):  # resolution, ..., 8
            tmp = channels_at(res, channel_base, channel_max)
            out = channels_at(res // 2, channel_base, channel_max)
            in_channels = 0 if res == resolution else tmp
            self.blocks.append(
                DiscriminatorBlock(
                    in_channels, tmp, out, image_channels, residual, clamp, res >= reduced_from
                )
            )
        channels = channels_at(4, channel_base, channel_max)
        self.cmap_dim = channels if num_classes else 0
        self.label_mapping = None
        if num_classes:
            self.label_mapping = MappingNetwork(0, num_classes, self.cmap_dim, D_LABEL_MAPPING_LAYERS)
        self.epilogue = DiscriminatorEpilogue(channels, self.cmap_dim, mbstd_group, clamp)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = images
        for block in self.blocks:
            x = block(x)
        with float32_region(images.device.type):
            x = self.epilogue(x)
            if self.label_mapping is None:
                return x.squeeze(1)
            cmap = self.label_mapping(None, require_labels(labels))
            return (x * cmap).sum(dim=1) / math.sqrt(self.cmap_dim)


def build_stylegan2_generator(model_cfg, sample_shape: tuple[int, ...]) -> StyleGAN2Generator:
    """G from the `model` config section (fields named in its stylegan2 block)."""
    m = model_cfg
    return StyleGAN2Generator(
        m.latent_dim,
        tuple(sample_shape),
        m.num_classes,
        w_dim=m.w_dim,
        mapping_layers=m.mapping_layers,
        style_mixing=m.style_mixing,
        w_avg_beta=m.w_avg_beta,
        **_shared_options(m),
    )


def _shared_options(m) -> dict:
    """The options G and D both read."""
    return {
        "channel_base": m.channel_base,
        "channel_max": m.channel_max,
        "conv_clamp": m.conv_clamp,
        "reduced_precision_res": m.reduced_precision_res,
    }


def build_stylegan2_discriminator(model_cfg, sample_shape: tuple[int, ...]) -> StyleGAN2Discriminator:
    """D from the `model` config section."""
    m = model_cfg
    return StyleGAN2Discriminator(
        tuple(sample_shape),
        m.num_classes,
        mbstd_group=m.mbstd_group,
        residual=m.d_residual,
        **_shared_options(m),
    )


ARCHITECTURES.register(
    "stylegan2",
    Architecture(
        build_stylegan2_generator,
        build_stylegan2_discriminator,
        conditionings=("projection",),
        check_shape=lambda model, shape: image_side("stylegan2", shape, STYLEGAN2_RESOLUTIONS),
        discriminator_blocks=lambda discriminator: list(discriminator.blocks),  # resolution, ..., 8 px
    ),
)
