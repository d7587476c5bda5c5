"""eval.resize=clean: clean-fid's resize of 8-bit images to Inception's 299 px (Parmar et al. 2022).

Steps, as clean-fid documents them for its "clean" mode: each channel of the uint8 image becomes a
32-bit float PIL image (mode "F"), is resized to 299 x 299 with PIL's bicubic filter (antialiased:
its support grows with the downscale factor), clipped to [0, 255] and NOT quantized back to 8 bits;
the float32 result goes to the TorchScript FID Inception, whose own resize is then the identity.
Legacy (the default) leaves the resize to the network (bilinear without antialiasing, as
StyleGAN2-ADA), so small images are compared as the TensorFlow FID code compared them.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

INCEPTION_SIZE = 299


def clean_resize(images: torch.Tensor, size: int = INCEPTION_SIZE) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 (N, C, size, size) in [0, 255]."""
    pixels = images.cpu().numpy()
    out = np.empty((pixels.shape[0], pixels.shape[1], size, size), dtype=np.float32)
    for i, image in enumerate(pixels):
        for c, channel in enumerate(image):
            resized = Image.fromarray(channel.astype(np.float32), mode="F").resize(
                (size, size), resample=Image.BICUBIC
            )
            out[i, c] = np.asarray(resized).clip(0, 255)
    return torch.from_numpy(out)
