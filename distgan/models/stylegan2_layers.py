"""StyleGAN2's layers (Karras et al. 2020): equalized learning rate, modulated convolutions, FIR resampling.

Equalized learning rate: weights are stored N(0, 1) (divided by the layer's learning-rate multiplier)
and scaled at run time by lr_multiplier / sqrt(fan_in), so Adam's step is the same relative size in
every layer. Resampling uses the [1, 3, 3, 1] low-pass filter (separable, normalised to sum 1) before
every 2x down-sampling and after every 2x up-sampling.

Imports torch only: models know nothing of how they are trained or distributed.
"""

from __future__ import annotations

import math
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

FIR_TAPS = (1.0, 3.0, 3.0, 1.0)  # the paper's resampling filter
LEAKY_SLOPE = 0.2
LEAKY_GAIN = math.sqrt(2.0)  # keeps the activations' second moment through a leaky ReLU (He et al.)
MAPPING_LR_MULTIPLIER = 0.01  # the mapping network learns 100x slower than the rest (paper, appendix)


def fir_kernel() -> torch.Tensor:
    """The 2D [1, 3, 3, 1] filter, the outer product of the 1D taps, summing to 1."""
    taps = torch.tensor(FIR_TAPS)
    kernel = taps[:, None] * taps[None, :]
    return kernel / kernel.sum()


def _depthwise(kernel: torch.Tensor, channels: int, dtype: torch.dtype) -> torch.Tensor:
    return kernel.to(dtype)[None, None].expand(channels, 1, *kernel.shape)


def fir_filter(x: torch.Tensor, kernel: torch.Tensor, pad: int, stride: int = 1) -> torch.Tensor:
    """Each channel convolved with the 4x4 kernel after `pad` zeros on every side."""
    return F.conv2d(
        F.pad(x, [pad] * 4), _depthwise(kernel, x.shape[1], x.dtype), stride=stride, groups=x.shape[1]
    )


def upsample_2x(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """H x W -> 2H x 2W: zeros between the pixels, then the low-pass filter (gain 4 keeps the mean)."""
    weight = _depthwise(kernel * 4, x.shape[1], x.dtype)
    return F.conv_transpose2d(x, weight, stride=2, padding=1, groups=x.shape[1])


def downsample_2x(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """2H x 2W -> H x W: the low-pass filter, then every second pixel."""
    return fir_filter(x, kernel, pad=1, stride=2)


def bias_activation(x: torch.Tensor, bias, leaky: bool, gain: float = 1.0, clamp: float | None = None):
    """x + bias, then (optionally) leaky ReLU, times `gain`, clamped to +-clamp (fp16 overflow guard)."""
    if bias is not None:
        x = x + bias.to(x.dtype).reshape(1, -1, *([1] * (x.dim() - 2)))
    if leaky:
        x = F.leaky_relu(x, LEAKY_SLOPE)
        gain = gain * LEAKY_GAIN
    if gain != 1.0:
        x = x * gain
    if clamp:
        x = x.clamp(-clamp, clamp)
    return x


def autocast_enabled(device_type: str) -> bool:
    """Whether the caller runs under autocast on this device type (meta tensors have no autocast)."""
    return device_type != "meta" and torch.is_autocast_enabled(device_type)


def float32_region(device_type: str):
    """A context with the caller's autocast switched off: float32 inside."""
    return torch.autocast(device_type, enabled=False) if autocast_enabled(device_type) else nullcontext()


def block_precision(reduced_precision: bool, device_type: str):
    """The context a block runs in: the caller's autocast for a reduced-precision block, float32 else."""
    return nullcontext() if reduced_precision else float32_region(device_type)


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale each row to unit mean square (the mapping network's input normalisation)."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class EqualizedLinear(nn.Module):
    """Fully connected layer with equalized learning rate and an optional leaky ReLU."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        leaky: bool = False,
        bias_init: float = 0.0,
        lr_multiplier: float = 1.0,
    ) -> None:
        super().__init__()
        self.leaky = leaky
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, (self.weight * self.weight_gain).to(x.dtype))
        return bias_activation(x, self.bias * self.bias_gain, self.leaky)


class EqualizedConv2d(nn.Module):
    """Convolution with equalized learning rate, optional 2x FIR down-sampling and leaky ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        leaky: bool = True,
        down: bool = False,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.leaky, self.down, self.conv_clamp = leaky, down, conv_clamp
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.register_buffer("fir", fir_kernel(), persistent=False)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        weight = (self.weight * self.weight_gain).to(x.dtype)
        size = weight.shape[-1]
        if self.down and size == 1:
            x = F.conv2d(downsample_2x(x, self.fir), weight)
        elif self.down:  # blur with 2 px of padding, then a strided conv: 2H -> H exactly
            x = F.conv2d(fir_filter(x, self.fir, pad=2), weight, stride=2)
        else:
            x = F.conv2d(x, weight, padding=size // 2)
        clamp = self.conv_clamp * gain if self.conv_clamp else None
        return bias_activation(x, self.bias, self.leaky, gain, clamp)


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    demodulate: bool = True,
    up: bool = False,
    fir: torch.Tensor | None = None,
    pre_normalize: bool = False,
) -> torch.Tensor:
    """Convolve each sample with its own weights: weight[o, i] * styles[n, i], then (demodulate) each
    output channel's weights rescaled to unit norm, so unit-variance inputs give unit-variance outputs.

    Computed in the equivalent form the paper describes: inputs scaled by the styles, one convolution
    with the shared weights for the whole batch, outputs scaled by the demodulation coefficients.
    `up`: transposed conv (stride 2) then the FIR filter. `pre_normalize` divides weight and styles by
    their max first (reduced precision: no overflow; demodulation cancels the scale)."""
    out_channels, in_channels, size, _ = weight.shape
    if pre_normalize and demodulate:
        weight = (
            weight
            / weight.flatten(1).abs().amax(dim=1).reshape(-1, 1, 1, 1)
            / math.sqrt(in_channels * size**2)
        )
        styles = styles / styles.abs().amax(dim=1, keepdim=True)
    x = x * styles.to(x.dtype)[:, :, None, None]
    if up:  # 2H+1 after the stride-2 transpose, 2H after the filter (gain 4 keeps the mean)
        x = fir_filter(F.conv_transpose2d(x, weight.transpose(0, 1).to(x.dtype), stride=2), fir * 4, pad=1)
    else:
        x = F.conv2d(x, weight.to(x.dtype), padding=size // 2)
    if demodulate:  # |weight[o] * styles[n]|^2 for every (n, o), without forming per-sample weights
        norms = styles.square() @ weight.square().sum(dim=[2, 3]).T
        x = x * (norms + 1e-8).rsqrt().to(x.dtype)[:, :, None, None]
    return x


class StyledConv(nn.Module):
    """A synthesis layer: affine style from w, modulated+demodulated 3x3 conv (optionally 2x up),
    per-pixel noise with a learned strength, bias, leaky ReLU, optional clamp."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        up: bool = False,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.up, self.conv_clamp, self.resolution = up, conv_clamp, resolution
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)  # styles start at 1
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))  # demodulated: no gain
        # one strength per layer; shape (1,), not (): DeepSpeed cannot broadcast a 0-dim parameter
        self.noise_strength = nn.Parameter(torch.zeros(1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        # fixed noise for evaluation: the same image for the same latent
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.register_buffer("fir", fir_kernel(), persistent=False)

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, noise_mode: str, pre_normalize: bool, noise=None
    ) -> torch.Tensor:
        """`noise`: this layer's (N, 1, r, r) noise map, given instead of drawn (noise_mode random)."""
        styles = self.affine(w)
        x = modulated_conv2d(x, self.weight, styles, up=self.up, fir=self.fir, pre_normalize=pre_normalize)
        if noise_mode == "random" and noise is not None:
            x = x + (noise.to(x.device) * self.noise_strength).to(x.dtype)
        elif noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device)
            x = x + (noise * self.noise_strength).to(x.dtype)
        elif noise_mode == "const":
            x = x + (self.noise_const * self.noise_strength).to(x.dtype)
        return bias_activation(x, self.bias, leaky=True, clamp=self.conv_clamp)


class ToRGB(nn.Module):
    """1x1 modulated conv to image channels, without demodulation (the output's scale is learned)."""

    def __init__(self, in_channels: int, image_channels: int, w_dim: int, conv_clamp: float | None) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(image_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(image_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False)
        return bias_activation(x, self.bias, leaky=False, clamp=self.conv_clamp)


class MappingNetwork(nn.Module):
    """z (normalised) and the label's embedding (normalised) -> an MLP of leaky layers -> w.

    `latent_dim` 0: labels only (D's label mapping). `w_avg_beta` not None: the running average of w
    is tracked in the buffer `w_avg` during training (the truncation trick's centre)."""

    def __init__(
        self,
        latent_dim: int,
        num_classes: int,
        w_dim: int,
        num_layers: int,
        lr_multiplier: float = MAPPING_LR_MULTIPLIER,
        w_avg_beta: float | None = None,
    ) -> None:
        super().__init__()
        self.latent_dim, self.num_classes, self.w_avg_beta = latent_dim, num_classes, w_avg_beta
        embed_dim = w_dim if num_classes else 0
        self.embed = EqualizedLinear(num_classes, embed_dim) if num_classes else None  # on the one-hot label
        widths = [latent_dim + embed_dim] + [w_dim] * num_layers
        self.layers = nn.ModuleList(
            EqualizedLinear(widths[i], widths[i + 1], leaky=True, lr_multiplier=lr_multiplier)
            for i in range(num_layers)
        )
        if w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, latent, labels=None, update_w_avg: bool = False) -> torch.Tensor:
        parts = []
        if self.latent_dim:
            parts.append(normalize_2nd_moment(latent.float()))
        if self.embed is not None:
            one_hot = F.one_hot(labels.long(), self.num_classes).float()
            parts.append(normalize_2nd_moment(self.embed(one_hot)))
        x = torch.cat(parts, dim=1)
        for layer in self.layers:
            x = layer(x)
        if update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        return x


class MinibatchStd(nn.Module):
    """Appends the mean standard deviation over groups of `group_size` samples (sample n in group
    n mod N/G), one channel per group of channels (Karras et al. 2018): D sees a batch's variety."""

    def __init__(self, group_size: int, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        group = min(self.group_size, n)
        if n % group:
            raise ValueError(
                f"minibatch std: a batch of {n} does not split into groups of {group} "
                "(model.mbstd_group must divide the per-process batch)"
            )
        f = self.num_channels
        y = x.float().reshape(group, -1, f, c // f, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0)  # variance over each group
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])  # (N/G, F): std averaged over channels and pixels
        y = y.reshape(-1, f, 1, 1).repeat(group, 1, h, w)
        return torch.cat([x, y.to(x.dtype)], dim=1)
