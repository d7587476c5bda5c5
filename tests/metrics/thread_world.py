"""N ranks as threads of one process, with a `gather` that concatenates every rank's tensor in
rank order: enough of a world for code that only gathers (evaluation, the reference side)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch


class ThreadWorld:
    def __init__(self, world_size: int) -> None:
        self.barrier = threading.Barrier(world_size, timeout=60)
        self.slots: list = [None] * world_size

    def gather_for(self, rank: int):
        def gather(tensor: torch.Tensor) -> torch.Tensor:
            self.slots[rank] = tensor
            self.barrier.wait()
            out = torch.cat(self.slots)
            self.barrier.wait()  # nobody overwrites a slot before everyone has read it
            return out

        return gather


def run_ranks(world_size: int, fn: Callable) -> list:
    """fn(rank, world_size, gather) on every rank at once; the ranks' results in rank order. A rank's
    error is raised here (and aborts the others' waits)."""
    world, results, errors = ThreadWorld(world_size), [None] * world_size, []

    def main(rank: int) -> None:
        try:
            results[rank] = fn(rank, world_size, world.gather_for(rank))
        except BaseException as err:  # surface the worker's error in the test
            errors.append(err)
            world.barrier.abort()

    threads = [threading.Thread(target=main, args=(r,)) for r in range(world_size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results
