"""ADA on 2 processes through the real loop (tests/distributed/trainer_probe.py): r_t is averaged over
the ranks with one all-reduce, so both ranks hold the same p at every log step, and with DiffAugment-
style ops, x-flip, lazy R1 and the EMA by images on, the ranks still end with identical weights."""

from __future__ import annotations

import pytest
import torch

from tests.launching import TINY_TRAIN, WORKERS, accelerate_launch, run

pytestmark = pytest.mark.slow
PROBE = str(WORKERS / "trainer_probe.py")
STEPS = 8


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ada")
    run(
        accelerate_launch(
            2,
            PROBE,
            "--probe-out",
            str(out / "probe"),
            *TINY_TRAIN,
            f"train.steps={STEPS}",
            "augment.policy=ada",
            "augment.ops=[xflip,translation,color,cutout]",
            "augment.interval=1",
            "augment.speed_images=160",
            "augment.target=0.2",
            "data.mirror=true",
            "objective.r1_weight=1",
            "objective.r1_every=2",
            "train.ema_decay=0",
            "train.ema_images=64",
            f"train.out_dir={out / 'run'}",
            "--resume",
            "never",
        )
    )
    return [torch.load(out / "probe" / f"rank{r}.pt", weights_only=False) for r in (0, 1)]


def test_both_ranks_hold_the_same_p_at_every_log_step(ranks):
    logs0, logs1 = ([(step, s["augment_p"]) for step, s in r["logs"]] for r in ranks)
    assert [step for step, _ in logs0] == list(range(1, STEPS + 1))
    assert logs0 == logs1
    assert len({p for _, p in logs0}) >= 3, logs0  # p really moved


def test_ranks_end_with_identical_weights(ranks):
    state0, state1 = ranks[0]["state"], ranks[1]["state"]
    different = [k for k in state0 if not torch.equal(state0[k], state1[k])]
    assert not different, f"ranks differ in {different}"
