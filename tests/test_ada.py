"""ADA (Karras et al. 2020): the p update rule, its tally, and p through checkpoints: a run stopped and
resumed has the same p at every step, and the same weights, as a straight run."""

from __future__ import annotations

import json

import pytest
import torch

from distgan import augment, trainer
from distgan.checkpoint import TrainState
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


def test_trainer_turns_the_tally_into_p():
    cfg = load_config(None, ["augment.policy=ada", "augment.speed_images=1000", "data.batch_size=50"])
    tally = augment.RealSignTally("cpu")
    for mean_sign in (1.0, 0.5, 0.25, 0.75):  # r_t = 0.625 > 0.6 over 4 D steps of 50 images
        tally.add(torch.tensor(mean_sign))
    assert trainer.adapted_p(cfg, 0.3, tally, world=1) == pytest.approx(0.3 + 200 / 1000)
    assert tally.totals.tolist() == [0.0, 0.0]  # the next interval starts afresh
    for mean_sign in (0.5, 0.5):  # r_t = 0.5 < 0.6: p falls by 2 steps x 50 images
        tally.add(torch.tensor(mean_sign))
    assert trainer.adapted_p(cfg, 0.3, tally, world=1) == pytest.approx(0.3 - 100 / 1000)
    for mean_sign in (1.0, 1.0, 0.0, 1.0):  # as summed over 2 processes: 2 D steps of the global batch
        tally.add(torch.tensor(mean_sign))
    assert trainer.adapted_p(cfg, 0.3, tally, world=2) == pytest.approx(0.3 + 100 / 1000)


def test_tally_state_round_trips_through_json_exactly():
    tally = augment.RealSignTally("cpu")
    for value in (0.1, 0.7, -0.3):
        tally.add(torch.tensor(value))
    copy = augment.RealSignTally("cpu")
    copy.load_state_dict(json.loads(json.dumps(tally.state_dict())))
    assert torch.equal(copy.totals, tally.totals)
    state = TrainState(augment_p=0.1 + 0.2)  # not a round number in binary
    assert TrainState.from_meta(json.loads(json.dumps(state.to_meta()))).augment_p == state.augment_p


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
