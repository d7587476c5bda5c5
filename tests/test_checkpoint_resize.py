"""The Checkpointer restoring a checkpoint of 2 processes on 1 or 3 (fake ranks, no processes):
the backend is told, the data gets every saved rank's position, ADA's tally keeps its per-process
average on rank 0, a part that cannot be carried is refused by name, and one warning is printed."""

from __future__ import annotations

import json

import pytest
import torch

from distgan.checkpoint import Checkpointer, CheckpointParts
from distgan.errors import CheckpointError


class _Accelerator:
    """Rank `index` of `world` as the Checkpointer sees it (barriers are no-ops)."""

    def __init__(self, world: int, index: int) -> None:
        self.num_processes, self.process_index, self.is_main_process = world, index, index == 0
        self.printed: list[str] = []

    def wait_for_everyone(self):
        pass

    def print(self, *args):
        if self.is_main_process:
            self.printed.append(" ".join(map(str, args)))


class _Backend:
    writes_weights = False

    def __init__(self) -> None:
        self.generator_module, self.discriminator_module = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
        self.loaded: list = []

    def save_state(self, directory):
        directory.mkdir(parents=True, exist_ok=True)

    def load_state(self, directory, resized_at=None):
        self.loaded.append(resized_at)


class _Part:
    def __init__(self, state: dict) -> None:
        self.state = state

    def state_dict(self) -> dict:
        return dict(self.state)

    def load_state_dict(self, state: dict) -> None:
        self.state = state


class _Stream(_Part):
    def load_resharded(self, states: list[dict]) -> None:
        self.state = {"from": states}


class _Counters(_Part):
    def load_state_dict(self, meta: dict) -> None:
        self.state = {"step": meta["step"]}


def parts(tally: dict, position: dict) -> CheckpointParts:
    backend = _Backend()
    return CheckpointParts(
        backend, shared=[_Counters({"step": 0})],
        per_rank={"data": _Stream(position), "augment": _Part(tally)},
        weights={"generator": backend.generator_module, "discriminator": backend.discriminator_module},
        restored_weights=("generator", "discriminator"),
    )  # fmt: skip


@pytest.fixture
def two_rank_checkpoint(tmp_path):
    saved = Checkpointer(
        tmp_path, _Accelerator(2, 0), parts({"sign_sum": 1.5, "steps": 3.0}, {"source": "toy", "index": 7}), 2
    )
    checkpoint = saved.save(5)
    rank1 = {
        "data": {"source": "toy", "index": 4},
        "augment": {"sign_sum": 0.5, "steps": 3.0},
    }  # what rank 1 wrote
    (checkpoint / "ranks" / "rank_00001.json").write_text(json.dumps(rank1))
    return tmp_path, checkpoint


@pytest.mark.parametrize("world", [1, 3])
def test_restore_on_another_world(two_rank_checkpoint, world):
    run_dir, checkpoint = two_rank_checkpoint
    for rank in range(world):
        restored = parts({"sign_sum": 9.0, "steps": 9.0}, {})
        accelerator = _Accelerator(world, rank)
        Checkpointer(run_dir, accelerator, restored, 2).restore(checkpoint)
        assert restored.backend.loaded == [5]  # resized_at: the checkpoint's step
        assert restored.per_rank["data"].state == {
            "from": [{"rank": 0, "source": "toy", "index": 7}, {"rank": 1, "source": "toy", "index": 4}]
        }
        tally = restored.per_rank["augment"].state
        expected = (
            {"sign_sum": 2.0 * world / 2, "steps": 6.0 * world / 2}
            if rank == 0
            else {"sign_sum": 0, "steps": 0}
        )
        assert tally == expected  # summed over the new ranks: the same per-process average
        assert restored.shared[0].state == {"step": 5}
        warnings = [line for line in accelerator.printed if line.startswith("warning:")]
        assert len(warnings) == (1 if rank == 0 else 0)
        if rank == 0:
            assert warnings[0].startswith("warning: step_0000005 was written by 2 processes and this run has")


def test_same_world_restores_each_rank_its_own(two_rank_checkpoint):
    run_dir, checkpoint = two_rank_checkpoint
    restored = parts({}, {})
    accelerator = _Accelerator(2, 1)
    Checkpointer(run_dir, accelerator, restored, 2).restore(checkpoint)
    assert restored.backend.loaded == [None]
    assert restored.per_rank["data"].state == {"source": "toy", "index": 4}
    assert not accelerator.printed  # not the main process; and no warning anywhere


def test_a_part_that_cannot_be_carried_is_refused_by_name(two_rank_checkpoint):
    run_dir, checkpoint = two_rank_checkpoint
    restored = parts({}, {})
    restored.per_rank["data"] = _Part({})  # a position without load_resharded
    with pytest.raises(
        CheckpointError, match="per-process state 'data' cannot be carried from 2 processes to 1"
    ):
        Checkpointer(run_dir, _Accelerator(1, 0), restored, 2).restore(checkpoint)
