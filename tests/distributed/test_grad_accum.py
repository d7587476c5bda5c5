"""GAN-aware gradient accumulation (train.grad_accum): one iteration with the global batch of 64
split into 4 micro-batches per process gives the weights of the unsplit batch, on 1 and 2
processes, for WGAN-GP (penalty per micro-batch) and non-saturating, under DDP and ZeRO-2; under
DDP every optimizer step all-reduces its gradients once (DDP comm hook count), not once per
micro-batch. Two launches in all (CI time): every case of a world size runs in one of them;
ZeRO-2 only in the 2-process launch (its engines take seconds to build).
Models are BatchNorm-free in D (equivalence_worker.py runs G's BatchNorm on running stats).
"""

from __future__ import annotations

import sys

import pytest

from tests.distributed.test_equivalence import assert_equivalent, ranks_of
from tests.launching import WORKERS, accelerate_launch, run

pytestmark = pytest.mark.slow
WORKER = str(WORKERS / "equivalence_worker.py")
BATCH = ["--global-batch", "64"]
N_CRITIC = 2  # equivalence_worker.N_CRITIC: D optimizer steps per iteration
SINGLE = ["wgan-gp/ddp", "wgan-gp/ddp/accum4", "nonsaturating/ddp", "nonsaturating/ddp/accum4"]
TWO = ["wgan-gp/ddp/accum4", "nonsaturating/ddp/accum4", "wgan-gp/zero2/accum4"]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    out = tmp_path_factory.mktemp("accum1")
    run([sys.executable, WORKER, "--out", str(out), *BATCH, *SINGLE])
    return out


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    out = tmp_path_factory.mktemp("accum2")
    run(accelerate_launch(2, WORKER, "--out", str(out), *BATCH, *TWO))
    return out


@pytest.mark.parametrize("case", ["wgan-gp/ddp/accum4", "nonsaturating/ddp/accum4"])
def test_four_micro_batches_match_the_full_batch_on_one_process(one_process, case):
    reference = "/".join(case.split("/")[:1] + ["ddp"])
    assert_equivalent(one_process, one_process, case, reference, 1)


@pytest.mark.parametrize("case", ["wgan-gp/ddp/accum4", "nonsaturating/ddp/accum4", "wgan-gp/zero2/accum4"])
def test_four_micro_batches_on_two_processes_match_the_full_batch_on_one(one_process, two_processes, case):
    reference = "/".join(case.split("/")[:1] + ["ddp"])
    assert_equivalent(one_process, two_processes, case, reference, 2)


def test_one_gradient_all_reduce_per_optimizer_step(two_processes):
    for case in ("wgan-gp/ddp/accum4", "nonsaturating/ddp/accum4"):
        for meta, _ in ranks_of(two_processes, case):
            # tiny models: one gradient bucket, so one all-reduce per D step and one per G step
            assert (int(meta["comm_d"]), int(meta["comm_g"])) == (N_CRITIC, 1), (case, meta)
