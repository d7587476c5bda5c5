"""distgan.data: real and toy training data, sharded per process, resumable, never the bottleneck.

Public interface (what the trainer, metrics and benchmarks use):
    DataError, Batch, sample_shape(cfg), TrainStream, build_train_stream(cfg, rank, world_size),
    real_examples(cfg, num), evaluation_data(cfg, num), evaluation_stream(cfg, count), toy_modes(name).
Sources: embedded (real MNIST sample shipped here), hub, parquet, imagefolder, prepared, zip
(zip_source.py), webdataset (webdataset_source.py), lmdb (lmdb_source.py), stacked_mnist
(stacked_source.py), toy; each is a `DataSource` in
`distgan.registry.SOURCES` (a new source is one file that registers one).
`python -m distgan.data.prepare` writes a pre-decoded copy of a source (see prepare.py).
"""

from distgan.data import lmdb_source, stacked_source, webdataset_source, zip_source  # noqa: F401, E402 - they register their sources
from distgan.data.batch import Batch
from distgan.data.errors import DataError
from distgan.data.sources import DataSource, Source
from distgan.data.toy import toy_modes
from distgan.data.train_stream import (
    TrainStream,
    build_train_stream,
    evaluation_data,
    evaluation_stream,
    real_examples,
)

__all__ = [
    "Batch",
    "DataError",
    "DataSource",
    "Source",
    "TrainStream",
    "build_train_stream",
    "evaluation_data",
    "evaluation_stream",
    "real_examples",
    "toy_modes",
]
