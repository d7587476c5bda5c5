"""Counters against what they should be, not against another run: the real train() as rank 1 of a
world of 2 (a real one-process Accelerator that reports rank 1 of 2; the trainer's own code
decides everything rank-dependent).

- `images_seen` = world x local batch x D steps (the GLOBAL images), at every log step;
- this rank's data position = local batch x D steps, saved in its own rank file;
- a resume as rank 1 continues rank 1's own stream exactly where it stopped.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from distgan.config import load_config
from distgan.data import build_train_stream
from distgan.distributed import build_accelerator
from distgan.trainer import TrainHooks, train
from tests.backend_helpers import SMALL, TOY

WORLD, RANK, N_CRITIC = 2, 1, 2


class RankOfWorld:
    """A real single-process Accelerator that reports itself as rank `rank` of `world` processes,
    and records the real batches D sees."""

    def __init__(self, real, rank, world):
        self._real, self.process_index, self.num_processes = real, rank, world
        self.critic_inputs = []

    def __getattr__(self, name):
        return getattr(self._real, name)

    @property
    def is_main_process(self):  # the checkpoint's shared files are written by "rank 0": here, us
        return True

    def print(self, *args, **kwargs):
        pass

    def save_state(self, directory, **kwargs):
        """As in a real world of 2, the state folder holds every rank's RNG file (the real
        Accelerator writes only its own, rank 0's)."""
        out = self._real.save_state(directory, **kwargs)
        source = Path(directory) / "random_states_0.pkl"
        shutil.copyfile(source, source.with_name(f"random_states_{self.process_index}.pkl"))
        return out


def run_as_rank(out, steps, resume="never"):
    from accelerate.state import AcceleratorState, GradientState, PartialState

    AcceleratorState._reset_state(True), GradientState._reset_state(), PartialState._reset_state()
    cfg = load_config(
        "configs/quickstart.yaml",
        [
            *SMALL,
            *TOY,
            f"train.out_dir={out}",
            f"train.steps={steps}",
            f"train.n_critic={N_CRITIC}",
            "checkpoint.every=3",
            "log.every=1",
            "log.sample_every=0",
            "log.num_samples=4",
        ],
    )
    accelerator = RankOfWorld(build_accelerator(cfg), RANK, WORLD)
    logs, reals = {}, []
    hooks = TrainHooks(
        on_log=lambda step, scalars: logs.setdefault(step, scalars),
        before_d_step=lambda backend, batch: reals.append(batch.images.clone()),
    )
    assert train(cfg, resume=resume, accelerator=accelerator, hooks=hooks) == 0
    return cfg, logs, reals


def test_images_seen_data_position_and_resume_of_rank_1_of_2(tmp_path, fresh_accelerate):
    out = tmp_path / "run"
    cfg, logs, first = run_as_rank(out, steps=3)
    global_batch = cfg.data.batch_size
    local = global_batch // WORLD
    assert all(len(r) == local for r in first)  # each rank reads its share of the global batch
    for step in (1, 2, 3):
        assert logs[step]["images_seen"] == WORLD * local * N_CRITIC * step, step
    checkpoint = out / "checkpoints" / "step_0000003"
    meta = json.loads((checkpoint / "meta.json").read_text())
    assert meta["images_seen"] == WORLD * local * N_CRITIC * 3 and meta["world_size"] == WORLD
    position = json.loads((checkpoint / "ranks" / f"rank_{RANK:05d}.json").read_text())["data"]
    assert position["examples_consumed"] == local * N_CRITIC * 3  # this rank's own images only
    assert position["rank"] == RANK and position["world_size"] == WORLD
    # resumed as rank 1: rank 1's own stream continues where it stopped
    _, logs, resumed = run_as_rank(out, steps=4, resume="auto")
    stream = build_train_stream(cfg, RANK, WORLD)  # what rank 1 should read, from the start
    expected = [next(stream).images for _ in range(N_CRITIC * 4)]
    for got, want in zip(first + resumed, expected, strict=True):
        assert torch.equal(got, want)
    assert logs[4]["images_seen"] == WORLD * local * N_CRITIC * 4
