"""ImageStream: one process's infinite, exactly resumable stream of image batches.

Pipeline (main process): open the source (sources.py) -> `split_dataset_by_node(rank,
world_size)` -> seeded `shuffle` (buffer, shard order) -> `set_epoch(e)` per epoch,
forever. Rows are tagged (epoch, index in this process's stream) and cut into chunks
of one local batch; a torch DataLoader decodes the chunks (transforms.py) in
`data.num_workers` workers, in order, with pinned memory when CUDA is present;
data.mirror flips an example by a hash of its tag and the seed (resume-exact).
The DataLoader is ours alone: it must never go through `accelerator.prepare`,
which would shard the data a second time (FACTS.md).

Position = (epoch, index of the next row not yet delivered). Resuming rebuilds the
same seeded stream for that epoch and skips rows up to the position without
decoding them, so the batches after `load_state_dict` are exactly those of an
uninterrupted run. Skipped (bad) rows are counted at the position they occupy.
On another number of processes (`load_resharded`), the epoch in progress is
finished with the rows no process had read (resplit.py), then epochs split as usual.
This module does not know about models, optimizers or accelerate.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator

import torch
from datasets.distributed import split_dataset_by_node

from distgan.config import ExperimentConfig
from distgan.data.batch import Batch
from distgan.data.errors import DataError
from distgan.data.resplit import next_layers, resplit_rows, summed_counter
from distgan.data.sources import Source, locate_row, open_source, read_rows
from distgan.data.transforms import ChunkDecoder, ImageSpec, RawRow, keep_chunk, mirror_key, note_conversions


def bad_example_message(source: Source, bad: dict, where: str) -> str:
    """The DataError text for one unusable row: file/row when it can be found, column, reason, fix."""
    origin = bad["path"] and f"file {bad['path']}"
    if not origin and source.local_files:
        origin = locate_row(
            source.local_files, source.image_column, bad["image"], source.label_column, bad["label"]
        )
    return (
        f"bad example in {source.where!r} ({origin + '; ' if origin else ''}{where}), {bad['column']}: "
        f"{bad['reason']}. Fix the data, or set data.on_bad_example=skip to skip and count such rows."
    )


class _Chunks:
    """The DataLoader's 'sampler': chunks of raw rows from a start position on, forever."""

    def __init__(self, stream: ImageStream, epoch: int, index: int):
        self.stream, self.epoch, self.index = stream, epoch, index

    def __iter__(self) -> Iterator[list[RawRow]]:
        chunk: list[RawRow] = []
        for row in self.stream.raw_rows(self.epoch, self.index):
            chunk.append(row)
            if len(chunk) == self.stream.local_batch:
                yield chunk
                chunk = []


class ImageStream:
    """Infinite iterator over this process's local image batches (see the module docstring)."""

    def __init__(self, cfg: ExperimentConfig, rank: int, world_size: int):
        data = cfg.data
        self.cfg, self.rank, self.world_size = cfg, rank, world_size
        self.local_batch = cfg.local_batch(world_size)
        self.source = open_source(cfg, world_size)
        self.spec = ImageSpec.from_config(
            cfg, self.source.image_column, self.source.label_column, self.source.prepared is not None
        )
        if data.mirror:  # x-flip decided per example by (seed, rank, epoch, index): resume-exact
            self.spec = dataclasses.replace(self.spec, mirror_key=mirror_key(cfg.train.seed, rank))
        shards = self.source.num_shards
        self.split_mode = "shards" if shards % world_size == 0 else "examples"
        if self.split_mode == "examples" and rank == 0:
            warnings.warn(self._split_note(), stacklevel=2)
        self.dataset = self._rank_dataset(rank, world_size)
        self.epoch, self.index, self.examples_consumed, self.skipped_committed = 0, 0, 0, 0
        self.resplit: tuple[int, list] | None = None  # (epoch, layers): see resplit.py
        self._reset_pipeline()

    # ------------------------------------------------------------ raw rows (main process)

    def _rank_dataset(self, rank: int, world_size: int):
        """Process `rank` of `world_size`'s split of the source, shuffled with the run's seed."""
        data = self.cfg.data
        dataset = split_dataset_by_node(self.source.dataset, rank=rank, world_size=world_size)
        if data.shuffle_buffer > 0:
            # max_buffer_input_shards=1: datasets' default interleaves shards with threads and then
            # sleeps 5 s at the end of every epoch; one shard at a time is as random and fast.
            dataset = dataset.shuffle(
                seed=self.cfg.train.seed, buffer_size=data.shuffle_buffer, max_buffer_input_shards=1
            )
        return dataset

    def _epoch_rows(self, epoch: int) -> Iterator[dict]:
        """This process's rows of `epoch`: its own split, or its share of the rest of the epoch in
        which the number of processes changed (every old rank's split is read again to find it)."""
        if self.resplit is None or epoch != self.resplit[0]:
            self.dataset.set_epoch(epoch)
            return read_rows(self.source, self.dataset)

        def old_rank_rows(rank: int, world_size: int) -> Iterator[dict]:
            dataset = self._rank_dataset(rank, world_size)
            dataset.set_epoch(epoch)
            return read_rows(self.source, dataset)

        return resplit_rows(old_rank_rows, self.resplit[1], self.rank, self.world_size)

    def raw_rows(self, start_epoch: int, start_index: int) -> Iterator[RawRow]:
        """Tagged raw rows from (start_epoch, start_index) on, over epochs forever."""
        image_col, label_col = self.source.image_column, self.source.label_column
        epoch = start_epoch
        while True:
            count = 0
            for index, row in enumerate(self._epoch_rows(epoch)):
                count += 1
                if epoch == start_epoch and index < start_index:
                    continue  # resuming: skip without decoding
                yield (epoch, index, row[image_col], row[label_col] if label_col else None)
            resplit_epoch = self.resplit is not None and epoch == self.resplit[0]
            if count == 0 and not resplit_epoch:  # the rest of an epoch may leave a rank nothing
                raise DataError(
                    f"data.path: process {self.rank} of {self.world_size} got no examples from "
                    f"{self.source.where!r} ({self.source.num_shards} shards); use fewer processes or more data"
                )
            epoch += 1

    # ------------------------------------------------------------ decoded batches

    def _reset_pipeline(self) -> None:
        self._loader_iter: Iterator[dict] | None = None
        self._carry: list[dict] = []  # decoded good examples not yet delivered, in order
        self._carry_len = 0
        self._pending_bad: list[tuple[int, int]] = []  # skipped rows not yet behind the position
        self._last_good_epoch = self.epoch - 1

    def _loader(self) -> Iterator[dict]:
        if self._loader_iter is None:
            workers = self.cfg.data.num_workers
            loader = torch.utils.data.DataLoader(
                ChunkDecoder(self.spec),
                sampler=_Chunks(self, self.epoch, self.index),
                batch_size=None,  # a chunk is already one local batch of rows
                collate_fn=keep_chunk,
                num_workers=workers,
                prefetch_factor=4 if workers else None,
                pin_memory=torch.cuda.is_available(),
                # Own generator: creating the iterator must not draw from the global torch RNG,
                # or a resumed run's model RNG would differ from the uninterrupted one.
                generator=torch.Generator().manual_seed(0),
            )
            self._loader_iter = iter(loader)
        return self._loader_iter

    def _bad_message(self, bad: dict) -> str:
        where = f"example #{bad['index']} of epoch {bad['epoch']} in process {self.rank}'s stream"
        return bad_example_message(self.source, bad, where)

    def _absorb(self, chunk: dict) -> None:
        note_conversions(chunk)
        for bad in chunk["bad"]:
            if self.cfg.data.on_bad_example == "error":
                raise DataError(self._bad_message(bad))
            self._pending_bad.append((bad["epoch"], bad["index"]))
            if bad["epoch"] >= self._last_good_epoch + 2:
                raise DataError(
                    f"data.path: a whole epoch of {self.source.where!r} had no usable example "
                    f"(last problem: {bad['column']}: {bad['reason']})"
                )
        if len(chunk["indices"]):
            self._carry.append(chunk)
            self._carry_len += len(chunk["indices"])
            self._last_good_epoch = int(chunk["epochs"][-1])

    def _take(self, n: int) -> dict:
        """Remove the first n decoded examples from the carry and return them as one chunk."""
        if len(self._carry) and len(self._carry[0]["indices"]) == n:  # the common case: no copy
            self._carry_len -= n
            return self._carry.pop(0)
        parts, need = [], n
        while need:
            head = self._carry[0]
            k = min(need, len(head["indices"]))
            parts.append(
                {key: value[:k] for key, value in head.items() if key != "bad" and value is not None}
            )
            rest = {
                key: value[k:] if value is not None else None for key, value in head.items() if key != "bad"
            }
            if len(rest["indices"]):
                self._carry[0] = rest
            else:
                self._carry.pop(0)
            need -= k
        self._carry_len -= n
        out = {key: torch.cat([p[key] for p in parts]) for key in parts[0]}
        out.setdefault("labels", None)
        return out

    def __iter__(self) -> ImageStream:
        return self

    def __next__(self) -> Batch:
        while self._carry_len < self.local_batch:
            self._absorb(next(self._loader()))
        taken = self._take(self.local_batch)
        self.epoch, self.index = int(taken["epochs"][-1]), int(taken["indices"][-1]) + 1
        self.examples_consumed += self.local_batch
        position = (self.epoch, self.index)
        behind = [p for p in self._pending_bad if p < position]
        self.skipped_committed += len(behind)
        self._pending_bad = [p for p in self._pending_bad if p >= position]
        return Batch(images=taken["images"], labels=taken["labels"])

    # ------------------------------------------------------------ state, stats, description

    def state_dict(self) -> dict:
        return {
            "source": self.cfg.data.source,
            "path": self.source.where,
            "rank": self.rank,
            "world_size": self.world_size,
            "epoch": self.epoch,
            "index": self.index,
            "examples_consumed": self.examples_consumed,
            "skipped_examples": self.skipped_committed,
            **({"resplit": self.resplit[1]} if self.resplit and self.resplit[0] == self.epoch else {}),
        }

    def load_resharded(self, states: list[dict]) -> None:
        """Continue from the positions of a run with another number of processes: this process's
        share of the rows no saved rank had read of the epoch in progress (resplit.py)."""
        self.close()
        epoch, layers = next_layers(states)
        self.epoch, self.index, self.resplit = epoch, 0, (epoch, layers)
        self.examples_consumed = summed_counter(states, "examples_consumed", self.rank)
        self.skipped_committed = summed_counter(states, "skipped_examples", self.rank)
        self._reset_pipeline()

    def load_state_dict(self, state: dict) -> None:
        self.close()
        self.epoch, self.index = int(state["epoch"]), int(state["index"])
        self.examples_consumed = int(state["examples_consumed"])
        self.skipped_committed = int(state.get("skipped_examples", 0))
        self.resplit = (self.epoch, state["resplit"]) if state.get("resplit") else None
        saved_path = state.get("path")
        if state.get("source") == "embedded" == self.cfg.data.source:
            saved_path = self.source.where  # the package's own digits, wherever it is installed
        same = (state.get("source"), saved_path, state.get("rank"), state.get("world_size")) == (
            self.cfg.data.source,
            self.source.where,
            self.rank,
            self.world_size,
        )
        if not same:
            warnings.warn(
                f"data position was saved for source={state.get('source')!r} path={state.get('path')!r} "
                f"rank {state.get('rank')}/{state.get('world_size')}; this run reads "
                f"{self.source.where!r} as rank {self.rank}/{self.world_size}: the per-process split "
                f"differs, so the data restarts at the beginning of epoch {self.epoch}",
                stacklevel=2,
            )
            self.index = 0
        self._reset_pipeline()

    @property
    def stats(self) -> dict:
        return {"epoch": self.epoch, "skipped_examples": self.skipped_committed + len(self._pending_bad)}

    def _split_note(self) -> str:
        shards = self.source.num_shards
        return (
            f"{shards} shards are not divisible by {self.world_size} processes: every process reads all "
            f"shards and keeps 1 of every {self.world_size} examples (slower); for whole shards per process "
            f"use a shard count divisible by the world size (e.g. `python -m distgan.data.prepare --num-shards K`)"
        )

    def describe(self) -> str:
        shards, world = self.source.num_shards, self.world_size
        if self.split_mode == "shards":
            split = f"split by shards: rank {self.rank}/{world} reads {shards // world} of {shards} shards"
        else:
            split = f"split by examples: WARNING {self._split_note()}"
        kind = f"prepared {self.spec.resolution}px" if self.source.prepared else "decode+transform"
        return (
            f"data: source={self.cfg.data.source} path={self.source.where} ({kind}), {split}; "
            f"local batch {self.local_batch}, shuffle buffer {self.cfg.data.shuffle_buffer}, "
            f"workers {self.cfg.data.num_workers}"
        )

    def close(self) -> None:
        """Stop DataLoader workers (if any); the stream restarts from its position on next()."""
        shutdown = getattr(self._loader_iter, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        self._loader_iter = None
