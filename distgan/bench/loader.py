"""Loader-only throughput: how many images per second one process's TrainStream delivers.

    python -m distgan.bench.loader                                   # embedded MNIST
    python -m distgan.bench.loader --config configs/celeba_wgan.yaml data.source=parquet data.path=DIR
    python -m distgan.bench.loader --config configs/celeba_wgan.yaml data.source=prepared data.path=PREP

Used by the data benchmark and the performance engineer to check that data is never
the bottleneck. It measures the stream alone (no model, no device copy).
"""

from __future__ import annotations

import argparse
import time

from distgan.config import ExperimentConfig, load_config
from distgan.data import TrainStream


def loader_throughput(
    cfg: ExperimentConfig, num_batches: int, rank: int = 0, world_size: int = 1, warmup_batches: int = 2
) -> float:
    """Images per second delivered by rank `rank`'s TrainStream over `num_batches` batches after warm-up."""
    stream = TrainStream(cfg, rank, world_size)
    try:
        for _ in range(warmup_batches):  # opens files, starts workers, fills the shuffle buffer
            next(stream)
        images = 0
        start = time.perf_counter()
        for _ in range(num_batches):
            images += len(next(stream))
        return images / (time.perf_counter() - start)
    finally:
        stream.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m distgan.bench.loader", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--config", default=None)
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3, help="report the best of this many runs")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    rates = [loader_throughput(cfg, args.batches) for _ in range(args.repeats)]
    print(
        f"data.source={cfg.data.source} {cfg.data.path}: {max(rates):.0f} images/s per process "
        f"(best of {args.repeats}; local batch {cfg.data.batch_size}, {cfg.data.resolution}px, "
        f"{cfg.model.channels} ch, {cfg.data.num_workers} workers)"
    )


if __name__ == "__main__":
    main()
