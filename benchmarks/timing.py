"""Timing shared by the cost benchmarks: blocks run in turns, so a change of machine load hits all alike."""

from __future__ import annotations

import time
from collections.abc import Callable


def cpu_and_wall_per_iteration(run: Callable[[], None], iterations: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per iteration of `iterations` calls of `run`."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(iterations):
        run()
    return (time.process_time() - cpu) / iterations, (time.perf_counter() - wall) / iterations


def in_turns(blocks: dict[str, Callable[[], tuple[float, float]]], repeats: int) -> dict[str, list]:
    """Each block once as a warm-up, then `repeats` rounds of every block in turn: their results."""
    for block in blocks.values():
        block()
    samples = {name: [] for name in blocks}
    for _ in range(repeats):
        for name, block in blocks.items():
            samples[name].append(block())
    return samples
