"""The small MNIST digit classifier whose features and predictions drive MNIST metrics.

Defines the network, the shipped weights file, and the fixed held-out split of
the 5,000 real digits it was trained and measured on (shared by
`scripts/train_mnist_classifier.py` and the test that re-checks its accuracy).
It must not train anything or know about generators: that is the script's and
the evaluation's job.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, safe_open
from torch import nn

WEIGHTS_FILE = Path(__file__).with_name("assets") / "mnist_classifier.safetensors"
FEATURE_DIM = 128  # width of the penultimate layer: the "mnist_classifier" feature space
NUM_CLASSES = 10
IMAGE_SIZE = 28
HELDOUT_PER_CLASS = 100  # 10 x 100 = 1,000 held-out digits; the other 4,000 train the classifier
SPLIT_SEED = 0


class MnistClassifier(nn.Module):
    """Three 3x3 conv blocks, global average pooling (128 features), one linear layer (10 logits).

    Input: (N, 1, 28, 28) floats in [-1, 1], the same range generators produce,
    so generated and real images go through the identical path.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(64)
        self.conv3 = nn.Conv2d(64, FEATURE_DIM, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(FEATURE_DIM)
        self.head = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features, shape (N, 128)."""
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)  # 14 x 14
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)  # 7 x 7
        x = F.relu(self.bn3(self.conv3(x)))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def heldout_split(
    labels: np.ndarray, per_class: int = HELDOUT_PER_CLASS, seed: int = SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of row indices: (train_idx, heldout_idx), `per_class` held out per digit."""
    rng = np.random.default_rng(seed)
    heldout = []
    for digit in range(NUM_CLASSES):
        rows = np.flatnonzero(labels == digit)
        heldout.append(rng.choice(rows, size=min(per_class, len(rows)), replace=False))
    heldout_idx = np.sort(np.concatenate(heldout))
    train_idx = np.setdiff1d(np.arange(len(labels)), heldout_idx)
    return train_idx, heldout_idx


def digits_to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """(N, 784) pixel values 0..255 -> (N, 1, 28, 28) float32 in [-1, 1]."""
    x = torch.as_tensor(np.asarray(pixels, dtype=np.float32)).reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE)
    return x / 127.5 - 1.0


def load_mnist_classifier(
    path: str | Path = WEIGHTS_FILE, device: str | torch.device = "cpu"
) -> MnistClassifier:
    """The shipped classifier in eval mode. A missing file means a broken install, not a user error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"MNIST classifier weights not found at {path}; recreate them with "
            "`python scripts/train_mnist_classifier.py`"
        )
    model = MnistClassifier()
    model.load_state_dict(load_file(str(path)))
    return model.to(device).eval().requires_grad_(False)


def classifier_card(path: str | Path = WEIGHTS_FILE) -> dict:
    """The metadata stored with the weights: held-out accuracy, split, training recipe."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    return {key: json.loads(value) for key, value in meta.items()}
