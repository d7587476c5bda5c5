"""Spectral norm on 2 processes (one launch of the real entry point, tests/distributed/spectral_probe.py).

The power-iteration vectors u, v are buffers, updated in place by every training-mode forward of a
normalised layer. They stay identical on every rank because each rank runs the same deterministic
update (same weights after DDP's gradient all-reduce, same u, v, the same number of D forwards:
D step, R1 penalty, G step) - before the loop's buffer average ever sees them; the average of
identical vectors then changes nothing. The checkpoint stores exactly what every rank holds.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from tests.launching import TINY_TRAIN, WORKERS, accelerate_launch, run
from tests.test_spectral_norm import SN_RESNET

pytestmark = pytest.mark.slow
PROBE = str(WORKERS / "spectral_probe.py")
STEPS, SAVED_AT = 3, 2
RESNET = [
    *SN_RESNET,
    "objective.r1_weight=1.0",  # the penalty's extra D forward (unwrapped module) updates u, v too
    "train.ema_decay=0.9",
    "train.n_critic=2",
]


@pytest.fixture(scope="module")
def observed(tmp_path_factory):
    out = tmp_path_factory.mktemp("sn_ranks")
    run(
        accelerate_launch(
            2,
            PROBE,
            "--probe-out",
            str(out / "probe"),
            *TINY_TRAIN,
            *RESNET,
            f"train.steps={STEPS}",
            f"checkpoint.every={SAVED_AT}",
            f"train.out_dir={out / 'run'}",
            "--resume",
            "never",
        )
    )
    return out, [torch.load(out / "probe" / f"rank{r}.pt", weights_only=True) for r in (0, 1)]


def differing(a: dict, b: dict) -> list[str]:
    assert a.keys() == b.keys()
    return [k for k in a if not torch.equal(a[k], b[k])]


def test_power_iteration_buffers_identical_on_both_ranks_at_every_step(observed):
    _, (rank0, rank1) = observed
    assert len(rank0["steps"]) == len(rank1["steps"]) == STEPS
    names = list(rank0["steps"][0])
    assert any(n.startswith("d.") for n in names) and any(n.startswith("g.") for n in names)
    for step, (s0, s1) in enumerate(zip(rank0["steps"], rank1["steps"], strict=True), start=1):
        assert differing(s0, s1) == [], f"step {step}: ranks differ (no buffer average in between)"
    # the buffer average runs where something reads (checkpoint at step 2, the end): a no-op here
    assert [sync["step"] for sync in rank0["syncs"]] == [SAVED_AT, STEPS]
    for sync0, sync1 in zip(rank0["syncs"], rank1["syncs"], strict=True):
        step = sync0["step"]
        assert differing(sync0["before"], sync1["before"]) == [], (
            f"step {step}: ranks differ BEFORE the average"
        )
        assert differing(sync0["after"], sync1["after"]) == [], f"step {step}: ranks differ after the average"
        assert differing(sync0["before"], sync0["after"]) == [], (
            f"step {step}: averaging identical vectors changed them"
        )
    # the vectors do move (a power-iteration step in every training forward): not a vacuous check
    first, last = rank0["steps"][0], rank0["steps"][-1]
    assert len(differing(first, last)) > len(first) // 2


def test_final_weights_and_all_buffers_identical_on_both_ranks(observed):
    _, (rank0, rank1) = observed
    assert differing(rank0["state"], rank1["state"]) == []


def test_checkpoint_holds_the_buffers_every_rank_had(observed):
    out, (rank0, _) = observed
    checkpoint = out / "run" / "checkpoints" / f"step_{SAVED_AT:07d}"
    (live,) = [sync["after"] for sync in rank0["syncs"] if sync["step"] == SAVED_AT]  # averaged for it
    assert not list((checkpoint / "state").glob("model*"))  # the weights are written once
    for file, prefix in (("discriminator.safetensors", "d."), ("generator.safetensors", "g.")):
        saved = load_file(str(checkpoint / file))
        mine = {k[len(prefix) :]: v for k, v in live.items() if k.startswith(prefix)}
        assert mine and all(torch.equal(saved[k], v) for k, v in mine.items()), file
