"""Mode counting on Stacked MNIST: which of the 1,000 digit triples a generator makes, and how evenly.

Each channel of an RGB sample is read by the shipped MNIST classifier (`MnistPerChannel`, the
labeler of the `stacked_modes` metric); the sample's mode is the triple 100 * red + 10 * green
+ blue. As in VEEGAN (Srivastava et al. 2017) and PacGAN (Lin et al. 2018, Table 3), a mode is
covered when at least one sample lands in it, and the KL is KL(p || uniform) of the generated
triple histogram p over the 1,000 modes, in nats: 0 when the samples spread evenly, log(1000/M)
when they spread evenly over M modes, log 1000 = 6.91 when every sample is the same triple. The
KL of each channel's own digit histogram to uniform over 10 is reported too (`kl_red`, `kl_green`,
`kl_blue`): the triple KL is their sum plus what the channels share, so they tell an unbalanced
channel from channels that depend on each other.
Published figures use 26,000 samples; with N samples even perfectly uniform draws leave about
1000 * exp(-N / 1000) modes empty and a KL of about 999 / (2 N) (the floor of real stacks).

Torch and numpy only; knows nothing of generators, data sources or processes.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from distgan.metrics.coverage import reverse_kl_to_uniform
from distgan.metrics.errors import MetricsError
from distgan.metrics.mnist_classifier import FEATURE_DIM, IMAGE_SIZE, load_mnist_classifier

NUM_MODES = 1000  # 10 classes in each of 3 channels
TRIPLE_WEIGHTS = (100, 10, 1)  # red, green, blue: the same numbering as the stacked_mnist source's labels
CHANNEL_NAMES = ("red", "green", "blue")


def stacked_modes(triples) -> dict[str, float]:
    """{"modes", "kl", "kl_red", "kl_green", "kl_blue"} of generated triples (N,) in 0..999: modes seen
    at least once, KL(p || uniform) over the triples and over each channel's digits."""
    labels = np.asarray(triples.cpu() if hasattr(triples, "cpu") else triples).astype(np.int64)
    if labels.ndim != 1 or labels.size == 0 or labels.min() < 0 or labels.max() >= NUM_MODES:
        raise MetricsError(f"stacked_modes: need a non-empty 1-D array of triples in 0..{NUM_MODES - 1}")
    counts = np.bincount(labels, minlength=NUM_MODES)
    channels = {
        f"kl_{name}": reverse_kl_to_uniform(np.bincount(labels // weight % 10, minlength=10))
        for name, weight in zip(CHANNEL_NAMES, TRIPLE_WEIGHTS, strict=True)
    }
    return {"modes": int((counts > 0).sum()), "kl": reverse_kl_to_uniform(counts), **channels}


class MnistPerChannel:
    """The shipped MNIST classifier applied to each channel of RGB stacks: features (N, 3 x 128) and
    the class triple (N,) numbered as `TRIPLE_WEIGHTS` says."""

    name = "mnist_per_channel"
    num_classes = NUM_MODES
    feature_dim = 3 * FEATURE_DIM

    def __init__(self, device: str | torch.device) -> None:
        self.model = load_mnist_classifier(device=device)
        self.device = torch.device(device)

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != 3:
            raise MetricsError(
                f"stacked_modes reads 3-channel stacks of digits (N, 3, H, W), got shape {tuple(x.shape)}"
            )
        digits = x.to(self.device, torch.float32).reshape(-1, 1, *x.shape[2:])  # each channel a digit
        if digits.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
            digits = F.interpolate(digits, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", antialias=True)
        features = self.model.features(digits)
        classes = self.model.head(features).argmax(dim=1).reshape(-1, 3)
        triples = (classes * torch.tensor(TRIPLE_WEIGHTS, device=classes.device)).sum(dim=1)
        return features.reshape(x.shape[0], -1), triples
