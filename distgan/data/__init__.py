"""distgan.data: real and toy training data, sharded per process, resumable, never the bottleneck.

Public interface (what the trainer, metrics and benchmarks use):
    DataError, Batch, sample_shape(cfg), TrainStream, build_train_stream(cfg, rank, world_size),
    real_examples(cfg, num), toy_modes(name), loader_throughput(cfg, num_batches).
Sources: embedded (real MNIST sample shipped here), hub, parquet, imagefolder, prepared, toy.
`python -m distgan.data.prepare` writes a pre-decoded copy of a source (see prepare.py).
"""

from distgan.data.batch import Batch, sample_shape
from distgan.data.bench import loader_throughput
from distgan.data.errors import DataError
from distgan.data.stream import TrainStream, build_train_stream, real_examples
from distgan.data.toy import toy_modes

__all__ = [
    "Batch",
    "DataError",
    "TrainStream",
    "build_train_stream",
    "loader_throughput",
    "real_examples",
    "sample_shape",
    "toy_modes",
]
