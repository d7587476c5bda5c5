"""The pieces of the SN-ResNet: up/down residual blocks, class-conditional BatchNorm, self-attention.

Pre-activation residual blocks as in SNGAN (Miyato et al. 2018) and BigGAN (Brock et al. 2019);
nearest-neighbour 2x upsampling in G, 2x2 average pooling in D. Spectral norm is not applied here:
the model registry wraps the finished network (`models.spectral`). Imports torch only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from distgan.models.base import require_labels


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose scale and shift are looked up per class (SNGAN-projection's categorical BN).

    With num_classes == 0 it is a plain affine BatchNorm2d. The normalisation itself is a child
    `nn.BatchNorm2d`, so SyncBatchNorm conversion reaches it.
    """

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.norm = nn.BatchNorm2d(channels, affine=num_classes == 0)
        if num_classes:
            self.gain = nn.Embedding(num_classes, channels)  # starts as the identity: gain 1, bias 0
            self.bias = nn.Embedding(num_classes, channels)
            nn.init.ones_(self.gain.weight)
            nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        x = self.norm(x)
        if not self.num_classes:
            return x
        labels = require_labels(labels)
        gain = self.gain(labels).to(x.dtype)[:, :, None, None]
        bias = self.bias(labels).to(x.dtype)[:, :, None, None]
        return x * gain + bias


class GeneratorBlock(nn.Module):
    """BN-ReLU-up-conv3x3-BN-ReLU-conv3x3, plus a 1x1 conv of the upsampled input: doubles the side."""

    def __init__(self, in_channels: int, out_channels: int, num_classes: int) -> None:
        super().__init__()
        self.norm1 = ConditionalBatchNorm2d(in_channels, num_classes)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = ConditionalBatchNorm2d(out_channels, num_classes)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        h = F.interpolate(F.relu(self.norm1(x, labels)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.norm2(self.conv1(h), labels)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class DiscriminatorBlock(nn.Module):
    """ReLU-conv3x3-ReLU-conv3x3 (-avgpool), plus a learned 1x1 shortcut when the shape changes.

    The first block sees images, not features: no ReLU in front (it would clip half the pixels),
    and its shortcut pools before the 1x1 conv (cheaper, as SNGAN's "optimized" first block).
    """

    def __init__(self, in_channels: int, out_channels: int, downsample: bool, first: bool = False) -> None:
        super().__init__()
        self.downsample, self.first = downsample, first
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        learned = downsample or in_channels != out_channels
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if learned else None

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2) if self.downsample else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = self._pool(self.conv2(F.relu(self.conv1(h))))
        if self.shortcut is None:
            return h + x
        if self.first:
            return h + self.shortcut(self._pool(x))
        return h + self._pool(self.shortcut(x))


class SelfAttention(nn.Module):
    """SAGAN's non-local block (Zhang et al. 2019): x + gamma * attention(x), gamma starting at 0.

    Keys and values are max-pooled 2x (as in SAGAN/BigGAN), so the attention map of an N-pixel
    feature map is N x N/4.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        key_channels, value_channels = max(1, channels // 8), max(1, channels // 2)
        self.query = nn.Conv2d(channels, key_channels, 1, bias=False)
        self.key = nn.Conv2d(channels, key_channels, 1, bias=False)
        self.value = nn.Conv2d(channels, value_channels, 1, bias=False)
        self.out = nn.Conv2d(value_channels, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(()))  # the block starts as the identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, height, width = x.shape
        query = self.query(x).flatten(2)  # (N, C/8, HW)
        key = F.max_pool2d(self.key(x), 2).flatten(2)  # (N, C/8, HW/4)
        value = F.max_pool2d(self.value(x), 2).flatten(2)  # (N, C/2, HW/4)
        weights = torch.softmax(torch.bmm(query.transpose(1, 2), key), dim=-1)  # (N, HW, HW/4)
        # weights on the left: the large map is never transposed (its copy dominated CPU time)
        attended = torch.bmm(weights, value.transpose(1, 2))  # (N, HW, C/2)
        attended = attended.transpose(1, 2).reshape(n, -1, height, width)
        return x + self.gamma * self.out(attended)
