"""Write a CelebA-shaped local parquet dataset for benchmarking where the Hub is unreachable.

    python benchmarks/celeba_standin.py --out /tmp/celeba_standin [--rows 2016] [--files 4]
    python -m distgan.bench --config configs/celeba_wgan.yaml data.source=parquet data.path=/tmp/celeba_standin

Rows are 178x218 RGB JPEG crops of the real photographs scikit-image ships, in the Hub
`flwrlabs/celeba` schema (image, celeb_id, 40 boolean attributes): the same decode, crop and
resize work per image as real CelebA. It reuses the data tests' fixture builder
(tests/data/conftest.py), so scikit-image and pytest (the dev extra) must be installed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="directory to write the parquet files into")
    parser.add_argument("--rows", type=int, default=2016, help="rows in all (126 distinct crops per seed)")
    parser.add_argument("--files", type=int, default=4, help="parquet files (shards)")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO))
    import datasets

    from tests.data.conftest import CELEBA_ATTRIBUTES, celeba_rows, write_parquet

    rows: list[dict] = []
    seed = 0
    while len(rows) < args.rows:
        rows += celeba_rows(seed)  # new random crop positions per seed
        seed += 1
    rows = rows[: args.rows]
    features = datasets.Features(
        {"image": datasets.Image(), "celeb_id": datasets.Value("int64")}
        | {name: datasets.Value("bool") for name in CELEBA_ATTRIBUTES}
    )
    args.out.mkdir(parents=True, exist_ok=True)
    for k, part in enumerate(np.array_split(np.arange(len(rows)), args.files)):
        name = f"train-{k:05d}-of-{args.files:05d}.parquet"
        write_parquet([rows[i] for i in part], features, args.out / name)
    print(f"wrote {len(rows)} rows in {args.files} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
