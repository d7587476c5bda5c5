"""The data module's front door: TrainStream for training, evaluation_stream for evaluation.

TrainStream picks the implementation for cfg.data.source (toy 2D points or images
through `datasets`) behind one interface the trainer relies on: an infinite
iterator of this process's local batches with an exact, JSON-serialisable
position. This module only dispatches; the work is in toy.py and image_stream.py.
"""

from __future__ import annotations

import warnings

import torch

from distgan.config import ExperimentConfig
from distgan.data.batch import Batch
from distgan.data.errors import DataError
from distgan.data.image_stream import ImageStream, bad_example_message
from distgan.data.reference_sample import reference_batches, reference_sample
from distgan.data.sources import open_source, read_rows
from distgan.data.start_checks import start_warnings
from distgan.data.toy import ToyStream, toy_modes, toy_real_examples
from distgan.data.transforms import ImageSpec, decode_rows, note_conversions


class TrainStream:
    """One per training process: infinite iterator over this process's local batches.

    The local batch is cfg.data.batch_size // world_size; epochs repeat forever.
    `state_dict()` / `load_state_dict()` save and restore the exact position.
    """

    def __init__(self, cfg: ExperimentConfig, rank: int, world_size: int):
        if not 0 <= rank < world_size:
            raise DataError(f"rank must be in [0, {world_size}), got {rank}")
        cfg.local_batch(world_size)  # the divisibility rule (ConfigError), checked before any I/O
        self._impl: ToyStream | ImageStream = (
            ToyStream(cfg, rank, world_size) if cfg.data.is_toy else ImageStream(cfg, rank, world_size)
        )
        if rank == 0:  # once per run, not once per process
            for note in start_warnings(cfg, getattr(self._impl, "source", None)):
                warnings.warn(note, stacklevel=2)

    def __iter__(self) -> TrainStream:
        return self

    def __next__(self) -> Batch:
        return next(self._impl)

    def state_dict(self) -> dict:
        """JSON-serialisable position of this process (epoch, index, examples consumed, ...)."""
        return self._impl.state_dict()

    def load_state_dict(self, state: dict) -> None:
        """Continue exactly where `state` was taken: next() yields what an uninterrupted run would."""
        self._impl.load_state_dict(state)

    def load_resharded(self, states: list[dict]) -> None:
        """Continue from every process's position of a run with another number of processes: the
        rows of the epoch in progress that none of them had read, split over this run's processes;
        then whole epochs as usual. Same examples, another order (see resplit.py)."""
        self._impl.load_resharded(states)

    @property
    def stats(self) -> dict:
        """{"epoch": int, "skipped_examples": int} for the logs."""
        return self._impl.stats

    def describe(self) -> str:
        """One line for the start-up log: source, path, shards, per-process split mode."""
        return self._impl.describe()

    def close(self) -> None:
        """Stop DataLoader workers, if any."""
        self._impl.close()


def build_train_stream(cfg: ExperimentConfig, rank: int, world_size: int) -> TrainStream:
    return TrainStream(cfg, rank, world_size)


def real_examples(cfg: ExperimentConfig, num: int) -> Batch:
    """The first `num` usable examples of the source in file order (one process, no shuffle)."""
    if cfg.data.is_toy:
        return toy_real_examples(cfg, num)
    source = open_source(cfg)
    spec = ImageSpec.from_config(cfg, source.image_column, source.label_column, source.prepared is not None)
    images, labels, got, rows = [], [], 0, []

    def flush() -> None:
        nonlocal got, rows
        chunk = decode_rows(rows, spec)
        note_conversions(chunk)
        rows = []
        for bad in chunk["bad"]:
            if cfg.data.on_bad_example == "error":
                raise DataError(bad_example_message(source, bad, f"row {bad['index']} in file order"))
        images.append(chunk["images"])
        labels.append(chunk["labels"])
        got += len(chunk["indices"])

    for index, row in enumerate(read_rows(source, source.dataset)):
        label = row[source.label_column] if source.label_column else None
        rows.append((0, index, row[source.image_column], label))
        if len(rows) == 256:
            flush()
            if got >= num:
                break
    if rows:
        flush()
    if got < num:
        raise DataError(f"data.path: {source.where!r} has {got} usable examples, {num} were requested")
    out_labels = None if source.label_column is None else torch.cat(labels)[:num]
    return Batch(images=torch.cat(images)[:num], labels=out_labels)


def evaluation_stream(cfg: ExperimentConfig, count: int | None):
    """What metrics compare against, streamed: `(rank, world_size) -> iterator` of this rank's share of
    the reference as (row indices, uint8 images) batches: `count` rows drawn with eval.reference_seed,
    or the whole split (count None). See reference_sample.py."""

    def stream(rank: int, world_size: int):
        return reference_batches(cfg, count, cfg.eval.reference_seed, rank, world_size)

    return stream


def evaluation_data(cfg: ExperimentConfig, num: int) -> tuple[Batch, tuple[torch.Tensor, float] | None]:
    """What metrics compare against: a seeded random sample of `num` real examples (eval.reference_seed;
    see reference_sample.py), and the toy mixture's (means, std)."""
    real = reference_sample(cfg, num, cfg.eval.reference_seed)
    return real, (toy_modes(cfg.data.path) if cfg.data.is_toy else None)
