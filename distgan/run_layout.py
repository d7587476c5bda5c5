"""The names of the files and folders in a run directory (DESIGN.md's run-directory contract).

One home for each name, so a reader and a writer can never disagree:

    <run_dir>/config.yaml  metrics.jsonl  eval.jsonl  events.jsonl  samples/step_0000100.png
    <run_dir>/checkpoints/latest  checkpoints/step_0000100/{generator,generator_ema,discriminator}.safetensors
    <run_dir>/checkpoints/step_0000100/{meta.json, config.yaml, manifest.json, state/, ranks/}

Imports nothing.
"""

from __future__ import annotations

from pathlib import Path

CONFIG = "config.yaml"  # the fully resolved config (run directory, checkpoints, exports)
METRICS = "metrics.jsonl"  # one JSON object per log step
EVAL = "eval.jsonl"  # one JSON object per evaluation
EVENTS = "events.jsonl"  # rollbacks and other rare events
SAMPLES = "samples"  # fixed-noise sample grids
CHECKPOINTS = "checkpoints"
LATEST = "latest"  # checkpoints/latest: the name of the newest complete checkpoint
META = "meta.json"  # a checkpoint's counters and facts
MANIFEST = "manifest.json"  # size + sha256 of every file of a checkpoint, written last
GENERATOR = "generator"  # <checkpoint>/generator.safetensors
GENERATOR_EMA = "generator_ema"  # <checkpoint>/generator_ema.safetensors, when EMA is on
DISCRIMINATOR = "discriminator"  # <checkpoint>/discriminator.safetensors


def sample_grid(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / SAMPLES / f"step_{step:07d}.png"
