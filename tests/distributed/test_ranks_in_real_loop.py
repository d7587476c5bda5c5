"""The real training loop on 2 processes, observed from inside (tests/distributed/trainer_probe.py).

- every rank ends with identical parameters AND BatchNorm buffers (G and D both use BatchNorm);
- ranks draw different latent vectors and see different real examples in the same step;
- during the G step no gradient reaches D, and under DDP D's gradients are not all-reduced;
- no collective the math does not need (issue 15): BatchNorm stats are averaged once, before the
  final checkpoint reads them, and that equals averaging after every step; the stop flag is
  agreed every K check points, not at each.
The same run under DeepSpeed ZeRO-2 (engines never broadcast buffers: the loop's sync must).
Both runs train with ADA, x-flip, lazy R1 and the EMA by images, and ADA's p must be the same on
both ranks at every log step (r_t is averaged over the ranks by one all-reduce).
"""

from __future__ import annotations

import pytest
import torch

from distgan.distributed.world import check_interval
from tests.launching import TINY_TRAIN, WORKERS, accelerate_launch, cpu_env, run

pytestmark = pytest.mark.slow
PROBE = str(WORKERS / "trainer_probe.py")
AUGMENTED = [  # p moves by 2 x 16 / 320 = 0.1 every G step (never clipped); local r_t straddle 0.8
    "augment.policy=ada",
    "augment.ops=[xflip,translation,color,cutout]",
    "augment.interval=1",
    "augment.speed_images=320",
    "augment.target=0.8",
    "augment.p_start=0.5",
    "data.mirror=true",
    "objective.r1_weight=1",
    "objective.r1_every=2",
    "train.ema_decay=0",
    "train.ema_images=64",
]
BACKENDS = {
    "ddp": AUGMENTED,
    "zero2": ["distributed.backend=deepspeed", "distributed.zero_stage=2", *AUGMENTED],
}
STEPS, N_CRITIC = 3, 2


def probe(out, extra, env=None):
    run(
        accelerate_launch(
            2,
            PROBE,
            "--probe-out",
            str(out / "probe"),
            *TINY_TRAIN,
            "model.d_norm=batch",
            f"train.steps={STEPS}",
            f"train.n_critic={N_CRITIC}",
            f"train.out_dir={out / 'run'}",
            *extra,
            "--resume",
            "never",
        ),
        env=env,
    )
    return [torch.load(out / "probe" / f"rank{r}.pt", weights_only=False) for r in (0, 1)]


_runs: dict = {}


def probed(name, tmp_path_factory, extra=(), env=None):
    """One launch per name for the whole module (several tests read the same run)."""
    if name not in _runs:
        _runs[name] = probe(tmp_path_factory.mktemp(name), list(extra), env=env)
    return _runs[name]


@pytest.fixture(scope="module", params=list(BACKENDS))
def observed(request, tmp_path_factory):
    return request.param, probed(request.param, tmp_path_factory, BACKENDS[request.param])


def test_parameters_and_batchnorm_buffers_identical_across_ranks(observed):
    _, (rank0, rank1) = observed
    state0, state1 = rank0["state"], rank1["state"]
    buffers = [k for k in state0 if "running_" in k]
    assert any(k.startswith("d.") for k in buffers) and any(k.startswith("g.") for k in buffers)
    assert any(
        not torch.allclose(state0[k], torch.full_like(state0[k], float(k.endswith("var")))) for k in buffers
    )
    different = [k for k in state0 if not torch.equal(state0[k], state1[k])]
    assert not different, f"ranks differ in {different}"


def test_ranks_draw_different_latents_and_see_different_examples(observed):
    _, (rank0, rank1) = observed
    steps = [
        (p0, z0, z1)
        for (p0, z0), (p1, z1) in zip(rank0["latents"], rank1["latents"], strict=False)
        if p0 in "dg"
    ]
    assert len(steps) == STEPS * (N_CRITIC + 1)
    for phase, z0, z1 in steps:
        assert z0.shape == z1.shape == (8, 100)
        shared = (z0[:, None] == z1[None]).all(-1)
        assert not shared.any(), f"{phase} step: the same latent vector on both ranks"
    assert len(rank0["images"]) == len(rank1["images"]) == STEPS * N_CRITIC
    for x0, x1 in zip(rank0["images"], rank1["images"], strict=True):
        shared = (x0.flatten(1)[:, None] == x1.flatten(1)[None]).all(-1)
        assert not shared.any(), "the same real example reached both ranks in one step"


def test_g_step_neither_computes_nor_all_reduces_d_gradients(observed):
    backend, (rank0, rank1) = observed
    for record in (rank0, rank1):
        assert record["grad_hooks"]["d"].get("g", 0) == 0  # no gradient accumulated into D in G steps
        assert record["grad_hooks"]["d"].get("d", 0) > 0  # ... the counter does count (D steps)
        assert record["grad_hooks"]["g"].get("g", 0) > 0
        assert record["d_grad_unchanged"] == [True] * STEPS
        if backend == "ddp":
            assert record["comm_calls"]["d"].get("g", 0) == 0  # no all-reduce of D in the G step
            assert record["comm_calls"]["d"]["d"] >= STEPS * N_CRITIC  # one+ bucket per D step
            assert record["comm_calls"]["g"]["g"] >= STEPS


def test_buffer_test_detects_unsynced_batchnorm(tmp_path):
    """Sensitivity: without the loop's buffer average, the ranks' running stats differ."""
    rank0, rank1 = probe(tmp_path, [], env=cpu_env(PROBE_PLANT_NO_BUFFER_SYNC="1"))
    different = [k for k in rank0["state"] if not torch.equal(rank0["state"][k], rank1["state"][k])]
    assert different and all("running_" in k for k in different)


def test_both_ranks_hold_the_same_ada_p_at_every_log_step(observed):
    _, ranks = observed
    logs0, logs1 = ([(step, scalars["augment_p"]) for step, scalars in r["logs"]] for r in ranks)
    assert [step for step, _ in logs0] == list(range(1, STEPS + 1))
    assert logs0 == logs1
    moves = [b - a for a, b in zip([0.5] + [p for _, p in logs0], [p for _, p in logs0], strict=False)]
    assert all(abs(abs(m) - 0.1) < 1e-9 for m in moves), logs0  # p moved at every step


def stop_collectives_by_the_rule(values: list[list[float]], check_points: int, check_s: float) -> int:
    """How many stop all-reduces StopRequest's rule makes over `check_points`, given the values each
    one agreed (K = check_interval of them: timing-dependent, so recomputed, not hard-coded)."""
    point, made = 1, 0
    while point <= check_points:
        assert made < len(values), f"a stop check was due at check point {point} but none happened"
        _, step_s, cost_s = values[made]
        made, point = made + 1, point + check_interval(step_s, cost_s, check_s)
    return made


def test_batchnorm_averaged_only_when_read_and_stop_flag_not_every_step(observed):
    for record in observed[1]:
        # 3 steps, nothing reads the buffers before the final checkpoint: one average, not 3.
        assert record["all_reduces"].get("buffers", 0) == 1, record["all_reduces"]
        # 5 check points (D step 1 of 3 iterations, G steps 1 and 2): a collective only where K says.
        values = record["stop_values"]
        assert all(len(v) == 3 for v in values), values  # every stop collective is the throttled one
        assert record["all_reduces"]["stop"] == stop_collectives_by_the_rule(values, 5, 10.0), values


def test_lazy_batchnorm_average_equals_averaging_every_step(tmp_path_factory):
    """Running stats are affine in their previous value with the same momentum on every rank, and
    training-mode forwards never read them: averaging once at the end == averaging every step."""
    lazy, _ = probed("ddp", tmp_path_factory, BACKENDS["ddp"])
    every_step, _ = probed(
        "ddp_every_step", tmp_path_factory, BACKENDS["ddp"], env=cpu_env(PROBE_SYNC_EVERY_STEP="1")
    )
    assert every_step["all_reduces"]["buffers"] >= STEPS  # the reference did average every step
    buffers = [k for k in lazy["state"] if "running_" in k]
    assert buffers
    for key, value in lazy["state"].items():
        if key in buffers:
            torch.testing.assert_close(value, every_step["state"][key], rtol=1e-5, atol=1e-6)
        else:  # weights and num_batches_tracked: bitwise, training never read the running stats
            assert torch.equal(value, every_step["state"][key]), key
