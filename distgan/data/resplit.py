"""The rest of an epoch on a new number of processes: which rows each process still reads.

A data position is per process: (epoch, index of its next row in its own stream). When a run
resumes on M processes from positions saved by N != M, the epoch in progress is finished as:

    remainder = the saved ranks' unread rows, interleaved one row per rank in rank order
                (rank 0's next row, rank 1's next row, ..., then again; an exhausted rank drops out)
    new rank k reads remainder[k], remainder[k + M], remainder[k + 2M], ...

so across the change every row of that epoch is read exactly once (the order of the remainder
differs from an uninterrupted run); the next epoch is split over the M processes as usual. A
second change of world size within the same epoch adds one more layer: the remainder of the
remainder. The positions of every layer are plain JSON (`layers` below), so a resumed process
rebuilds its stream of that epoch from them alone. This module knows rows only as iterables; it
knows nothing about files, decoding or models.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

# One layer: {"world_size": N, "positions": [next index of saved rank r, or None if r had finished
# the epoch]}. The first layer's streams are the epoch's ordinary per-rank streams of its world size.
Layer = dict[str, Any]


def interleave(streams: list[Iterable]) -> Iterator:
    """One item of each stream in turn; a stream that runs out drops out."""
    live = [iter(s) for s in streams]
    while live:
        still = []
        for stream in live:
            for item in stream:
                yield item
                still.append(stream)
                break
        live = still


def _unread(streams: list[Iterable], positions: list[int | None]) -> Iterator:
    return interleave(
        [itertools.islice(s, p, None) for s, p in zip(streams, positions, strict=True) if p is not None]
    )


def resplit_rows(
    base: Callable[[int, int], Iterable], layers: list[Layer], rank: int, world: int
) -> Iterator:
    """Rank `rank` of `world`'s rows of the resplit epoch. `base(r, n)`: saved rank r's ordinary
    stream of that epoch when the world had n processes (layer 0's world)."""
    first = layers[0]
    remainder = _unread(
        [base(r, first["world_size"]) for r in range(first["world_size"])], first["positions"]
    )
    for layer in layers[1:]:
        n = layer["world_size"]
        copies = itertools.tee(remainder, n)
        shares = [itertools.islice(c, r, None, n) for r, c in enumerate(copies)]
        remainder = _unread(shares, layer["positions"])
    return itertools.islice(remainder, rank, None, world)


def next_layers(states: list[dict]) -> tuple[int, list[Layer]]:
    """From every saved rank's position (state dicts with epoch, index and, inside a resplit
    epoch, `resplit`), the epoch to finish and its layers. The epoch to finish is the lowest one
    any rank is in; a rank already past it has read all of its rows of it."""
    if not states:
        raise ValueError("no saved data positions")
    states = sorted(states, key=lambda s: int(s["rank"]))
    epoch = min(int(s["epoch"]) for s in states)
    earlier: list[Layer] = next(
        (s["resplit"] for s in states if int(s["epoch"]) == epoch and s.get("resplit")), []
    )
    positions = [int(s["index"]) if int(s["epoch"]) == epoch else None for s in states]
    return epoch, [*earlier, {"world_size": len(states), "positions": positions}]


def summed_counter(states: list[dict], key: str, rank: int) -> int:
    """A per-rank counter over a change of world size: the saved ranks' total, kept by rank 0."""
    return sum(int(s.get(key, 0)) for s in states) if rank == 0 else 0
