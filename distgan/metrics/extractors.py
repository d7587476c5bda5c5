"""Feature extractors: map samples (generator output convention) to (N, D) features and class guesses.

Input everywhere: images as floats in [-1, 1], shape (N, C, H, W), or toy 2D
points (N, 2), exactly what `Generator.sample` and `distgan.data.real_examples`
return, so real and generated samples go through the identical path.

- raw: flattened pixels / points. Toy 2D data uses this.
- mnist_classifier: the shipped small MNIST CNN (128 penultimate features +
  predicted digit); 1-channel images, resized to 28 px when needed.
- inception: Inception-v3 pool features (2048) from the standard FID network,
  loaded from a local TorchScript file the user supplies (eval.inception_weights):
  `inception-2015-12-05.pt`, the TensorFlow FID graph translated to TorchScript
  by NVIDIA (StyleGAN2-ADA, clean-fid). The file carries the architecture
  and does its own resizing to 299 px, so distgan does not re-implement
  Inception-v3 (torchvision is not a dependency, and an unverified re-implementation
  would give numbers that look like FID but are not). Only the call convention
  (uint8 RGB in, `return_features=True`) is ours; it is tested with a stand-in.

Numbers from different extractors are not comparable: every result key names
its extractor. This module must not generate samples or compute metrics.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from distgan.metrics.clean_resize import clean_resize
from distgan.metrics.errors import MetricsError
from distgan.metrics.fidelity_inception import FidelityInceptionExtractor
from distgan.metrics.images import as_8bit_rgb
from distgan.metrics.mnist_classifier import FEATURE_DIM, IMAGE_SIZE, NUM_CLASSES, load_mnist_classifier
from distgan.metrics.stacked_modes import MnistPerChannel

INCEPTION_HINT = (
    "the TorchScript FID Inception-v3 file inception-2015-12-05.pt (as used by StyleGAN2-ADA and clean-fid; "
    "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt), "
    "downloaded on a machine with internet and given as eval.inception_weights=PATH; or "
    "eval.inception_weights=auto with `pip install 'distgan[fid]'` (torch-fidelity fetches its weights)"
)


class RawExtractor:
    """Flattened samples as features; no class predictions."""

    name = "raw"
    num_classes = 0

    def __init__(self, sample_shape: tuple[int, ...]) -> None:
        self.feature_dim = int(torch.Size(sample_shape).numel())

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return x.reshape(x.shape[0], -1).float(), None


class MnistClassifierExtractor:
    """Penultimate features (128) and predicted digit of the shipped MNIST classifier."""

    name = "mnist_classifier"
    num_classes = NUM_CLASSES
    feature_dim = FEATURE_DIM

    def __init__(self, device: str | torch.device) -> None:
        self.model = load_mnist_classifier(device=device)
        self.device = torch.device(device)

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if x.ndim != 4 or x.shape[1] != 1:
            raise MetricsError(
                f"mnist_classifier extractor needs 1-channel images (N, 1, H, W), got shape {tuple(x.shape)}"
            )
        x = x.to(self.device, torch.float32)
        if x.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
            x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", antialias=True)
        features = self.model.features(x)
        return features, self.model.head(features).argmax(dim=1)


class InceptionExtractor:
    """2048-d pool features of the standard FID Inception-v3 (TorchScript file)."""

    name = "inception"
    num_classes = 0
    feature_dim = 2048
    prediction_shape = (1008,)  # class probabilities, when asked for (Inception Score)

    def __init__(self, weights: str | Path, device: str | torch.device, resize: str = "legacy") -> None:
        path = Path(weights)
        if not path.is_file():
            raise MetricsError(
                f"eval.inception_weights: file not found: {path}; inception extractor needs {INCEPTION_HINT}"
            )
        try:
            self.model = torch.jit.load(str(path), map_location=device).eval()
        except (RuntimeError, ValueError) as err:
            raise MetricsError(
                f"eval.inception_weights: {path} is not a TorchScript module ({str(err).splitlines()[0]}); "
                f"the inception extractor needs {INCEPTION_HINT}. PyTorch state dicts such as pytorch-fid's "
                "pt_inception-*.pth are not supported."
            ) from None
        self.device = torch.device(device)
        self.resize = resize  # legacy: the network resizes; clean: clean_resize.py first
        self.probabilities = False  # set by the evaluation when the Inception Score is requested

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        images = as_8bit_rgb(x, self.device)
        if self.resize == "clean":
            images = clean_resize(images).to(self.device)
        features = self.model(images, return_features=True)
        # Class probabilities for the Inception Score, without the output bias (as the original IS code).
        probs = self.model(images, no_output_bias=True).float() if self.probabilities else None
        return features.reshape(features.shape[0], -1).float(), probs


Extractor = (
    RawExtractor
    | MnistClassifierExtractor
    | MnistPerChannel
    | InceptionExtractor
    | FidelityInceptionExtractor
)


def build_extractor(
    name: str,
    sample_shape: tuple[int, ...],
    device: str | torch.device,
    inception_weights: str | None = None,
    resize: str = "legacy",
) -> Extractor:
    """An extractor by resolved name (see `registry.resolve_extractor`); loads weights onto `device`."""
    if name == "raw":
        return RawExtractor(sample_shape)
    if name == "mnist_classifier":
        return MnistClassifierExtractor(device)
    if name == "mnist_per_channel":  # a labeler only (stacked_modes), never eval.extractor
        return MnistPerChannel(device)
    if name == "inception":
        if not inception_weights:
            raise MetricsError(
                f"eval.inception_weights is not set; the inception extractor needs {INCEPTION_HINT}"
            )
        if inception_weights == "auto":
            return FidelityInceptionExtractor(device)
        return InceptionExtractor(inception_weights, device, resize)
    raise MetricsError(f"eval.extractor: unknown extractor {name!r}; valid: raw, mnist_classifier, inception")
