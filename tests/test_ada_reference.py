"""ADA's r_t and p against the paper's rule, recomputed by hand from what the run logs.

Karras et al. 2020: r_t = E[sign(D(x_real))], the mean over the interval of each D step's mean
sign (not the sign of a mean logit); every `interval` G steps
p <- clip(p + sign(r_t - target) * images / speed_images, 0, 1), `images` the real images of the
interval, all processes together.
"""

from __future__ import annotations

import math

import pytest
import torch

from distgan import augment
from distgan.config import load_config
from distgan.trainer import TrainHooks, train
from tests.backend_helpers import SMALL

ADA = load_config(None, ["augment.policy=ada", "augment.interval=2", "augment.speed_images=1000"]).augment


def test_a_steps_r_t_is_the_mean_of_the_signs_not_the_sign_of_the_mean():
    pipe = augment.AugmentPipe(ADA, 28, 8, "cpu")
    # one confident real and three wrong ones: the mean logit is positive, most signs negative
    r_t = pipe.measure(torch.tensor([[10.0], [-1.0], [-1.0], [-1.0]]))["augment_rt"]
    assert r_t.item() == pytest.approx(-0.5)
    assert pipe.measure(torch.tensor([0.0, 2.0, -3.0, 4.0]))["augment_rt"].item() == pytest.approx(
        0.25
    )  # sign(0)=0
    # each step counts once, whatever its logits' scale
    pipe.observe({"augment_rt": torch.tensor(1.0)})
    pipe.observe(pipe.measure(torch.tensor([100.0, -0.1, -0.1, -0.1])))  # -0.5
    pipe.p = 0.5
    pipe.adjust(2, OneRank())
    assert pipe.p == pytest.approx(0.5 - 2 * 8 / 1000)  # r_t = (1 - 0.5) / 2 = 0.25 < target 0.6


class OneRank:
    size = 1

    @staticmethod
    def sum(values):
        return values


class FakeWorld:
    """`size` ranks: `sum` returns the all-reduce of every rank's tally, taken before any adjusts."""

    def __init__(self, tallies):
        self.size, self.total = len(tallies), sum(t.totals.clone() for t in tallies)

    def sum(self, values):
        return self.total.clone()


def test_p_on_two_ranks_is_the_hand_rule_over_both_ranks_signs_and_the_same_on_both():
    global_batch, speed, target = 16, 320, 0.6
    cfg = load_config(None, ["augment.policy=ada", "augment.interval=3", f"augment.speed_images={speed}"])
    ranks = [augment.AugmentPipe(cfg.augment, 28, global_batch, "cpu") for _ in range(2)]
    g = torch.Generator().manual_seed(3)
    p, logged, history = 0.2, {0: [], 1: []}, []
    for pipe in ranks:
        pipe.p = p
    for step in range(1, 13):
        for rank, pipe in enumerate(ranks):
            for _ in range(2):  # n_critic = 2 D steps, each on this rank's half of the global batch
                d_real = torch.randn(global_batch // 2, 1, generator=g) + (
                    1.5 if step < 7 else -0.5
                )  # r_t ~ 0.87, then ~ -0.38
                entry = pipe.measure(d_real)
                logged[rank].append(entry["augment_rt"].item())
                pipe.observe(entry)
        world = FakeWorld([pipe.tally for pipe in ranks])
        for pipe in ranks:
            pipe.adjust(step, world)
        if step % 3 == 0:  # by hand: both ranks' 12 D steps of the interval, 6 of the global batch each
            signs = logged[0][-6:] + logged[1][-6:]
            r_t = sum(signs) / len(signs)
            p = min(1.0, max(0.0, p + math.copysign(1.0, r_t - target) * 6 * global_batch / speed))
        assert ranks[0].p == ranks[1].p == pytest.approx(p, abs=1e-9), step
        history.append(p)
    assert 0.0 < min(history) < max(history) < 1.0, history  # p moved both ways, never clipped


def test_p_trajectory_of_a_real_run_follows_from_its_logged_r_t(tmp_path, fresh_accelerate):
    """The real loop, one process, one D step per G step (so each logged augment_rt is its step's
    r_t): every p in the log recomputed by hand from the logged r_t alone."""
    interval, speed, target, batch, steps = 2, 64, 0.2, 8, 6
    cfg = load_config(
        "configs/quickstart.yaml",
        [
            *SMALL,
            "augment.policy=ada",
            f"augment.interval={interval}",
            f"augment.speed_images={speed}",
            f"augment.target={target}",
            "augment.p_start=0.5",
            "train.n_critic=1",
            "model.num_classes=0",
            "model.latent_dim=8",
            "train.ema_decay=0",
            f"train.steps={steps}",
            "log.every=1",
            "log.sample_every=0",
            "log.num_samples=4",
            "checkpoint.every=0",
            f"train.out_dir={tmp_path / 'run'}",
        ],
    )
    logs = {}
    assert train(cfg, hooks=TrainHooks(on_log=lambda step, scalars: logs.setdefault(step, scalars))) == 0
    assert sorted(logs) == list(range(1, steps + 1))
    p, trajectory = 0.5, []
    for step in range(1, steps + 1):
        if step % interval == 0:
            r_t = sum(logs[s]["augment_rt"] for s in range(step - interval + 1, step + 1)) / interval
            p = min(1.0, max(0.0, p + math.copysign(1.0, r_t - target) * interval * batch / speed))
        trajectory.append(p)
    assert [logs[s]["augment_p"] for s in range(1, steps + 1)] == pytest.approx(trajectory, abs=1e-9)
    assert len(set(trajectory)) >= 3, trajectory  # p really moved
