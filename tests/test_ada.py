"""ADA (Karras et al. 2020): the p update rule, its tally, and p through checkpoints: a run stopped and
resumed has the same p at every step, and the same weights, as a straight run."""

from __future__ import annotations

import json

import pytest
import torch

from distgan import augment
from distgan.config import load_config
from distgan.trainer import train
from tests.test_trainer import assert_same_tensors, tiny_cfg, weights


def test_p_moves_by_images_over_speed_towards_the_target():
    # 64 images per adjustment, 640 to go from 0 to 1: steps of 0.1, clipped to [0, 1]
    p, history = 0.0, []
    for r_t in (0.9, 0.9, 0.2, 0.6, -1.0, -1.0, 0.61):
        p = augment.adjusted_p(p, r_t, target=0.6, images=64, speed_images=640)
        history.append(round(p, 12))
    assert history == [0.1, 0.2, 0.1, 0.1, 0.0, 0.0, 0.1]
    assert augment.adjusted_p(0.95, 1.0, 0.6, 64, 640) == 1.0


class _World:
    """`size` ranks whose tallies sum to what this rank holds (the sum is the caller's collective)."""

    def __init__(self, size: int) -> None:
        self.size = size

    @staticmethod
    def sum(values):
        return values


def test_pipe_turns_the_tally_into_p_on_its_interval():
    cfg = load_config(None, ["augment.policy=ada", "augment.speed_images=1000", "augment.interval=2"])
    pipe = augment.AugmentPipe(cfg.augment, side=28, global_batch=50, device="cpu")
    pipe.p = 0.3
    for mean_sign in (1.0, 0.5, 0.25, 0.75):  # r_t = 0.625 > 0.6 over 4 D steps of 50 images
        pipe.observe({"augment_rt": torch.tensor(mean_sign)})
    pipe.adjust(step=3, world=_World(1))  # not on the interval: nothing moves
    assert pipe.p == 0.3 and pipe.tally.totals.tolist() == [2.5, 4.0]
    pipe.adjust(step=4, world=_World(1))
    assert pipe.p == pytest.approx(0.3 + 200 / 1000)
    assert pipe.tally.totals.tolist() == [0.0, 0.0]  # the next interval starts afresh
    pipe.p = 0.3
    for mean_sign in (0.5, 0.5):  # r_t = 0.5 < 0.6: p falls by 2 steps x 50 images
        pipe.observe({"augment_rt": torch.tensor(mean_sign)})
    pipe.adjust(step=6, world=_World(1))
    assert pipe.p == pytest.approx(0.3 - 100 / 1000)
    pipe.p = 0.3
    for mean_sign in (1.0, 1.0, 0.0, 1.0):  # as summed over 2 processes: 2 D steps of the global batch
        pipe.observe({"augment_rt": torch.tensor(mean_sign)})
    pipe.adjust(step=8, world=_World(2))
    assert pipe.p == pytest.approx(0.3 + 100 / 1000)


def test_tally_state_round_trips_through_json_exactly():
    tally = augment.RealSignTally("cpu")
    for value in (0.1, 0.7, -0.3):
        tally.add(torch.tensor(value))
    copy = augment.RealSignTally("cpu")
    copy.load_state_dict(json.loads(json.dumps(tally.state_dict())))
    assert torch.equal(copy.totals, tally.totals)
    cfg = load_config(None, ["augment.policy=ada"]).augment
    pipe, restored = (augment.AugmentPipe(cfg, 28, 64, "cpu") for _ in range(2))
    pipe.p = 0.1 + 0.2  # not a round number in binary
    restored.load_state_dict(json.loads(json.dumps(pipe.state_dict())))
    assert restored.p == pipe.p


ADA = [
    "augment.policy=ada",
    "augment.interval=2",
    "augment.speed_images=400",
    "augment.target=0.3",
    "data.mirror=true",
    "checkpoint.every=0",
]


def test_ada_resume_equals_straight_training_bitwise(tmp_path, fresh_accelerate):
    """Stopped at step 3, in the middle of an ADA interval: p and the half-filled tally must come back."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train(tiny_cfg(straight, "train.steps=6", *ADA)) == 0
    assert train(tiny_cfg(split, "train.steps=3", *ADA)) == 0
    meta = json.loads((split / "checkpoints" / "step_0000003" / "meta.json").read_text())
    records = {r["step"]: r for r in map(json.loads, (split / "metrics.jsonl").read_text().splitlines())}
    assert meta["augment_p"] == records[3]["augment_p"]  # p is in the checkpoint, bit for bit
    assert train(tiny_cfg(split, "train.steps=6", *ADA)) == 0
    for name in ("generator", "generator_ema", "discriminator"):
        assert_same_tensors(weights(straight, 6, name), weights(split, 6, name))
    p_straight, p_split = ([json.loads(line)["augment_p"] for line in (run / "metrics.jsonl").read_text().splitlines()]
                           for run in (straight, split))  # fmt: skip
    assert p_straight == p_split
    assert len(set(p_straight)) >= 3, p_straight  # p really moved (0 -> up, in steps of 2 x 16 / 400)
