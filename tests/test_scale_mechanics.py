"""Issue 15's mechanics on one process: the stop-check interval, the lazy BatchNorm average's
restore, micro-batch splitting, train.grad_accum's config checks, DeepSpeed's accumulation keys and
the start-up warning for accumulation with BatchNorm. The multi-process proofs are in
tests/distributed/test_grad_accum.py and test_ranks_in_real_loop.py."""

from __future__ import annotations

import pytest
import torch

from distgan import step
from distgan.config import ConfigError, load_config
from distgan.data import Batch
from distgan.distributed.collectives import LazyBufferAverage
from distgan.distributed.deepspeed_json import deepspeed_config
from distgan.distributed.world import STOP_CHECK_BUDGET, check_interval


def test_stop_check_interval_keeps_cost_under_budget_and_signal_within_stop_check_s():
    step_s, cost_s = 0.030, 0.0004  # quickstart-like: 30 ms per check point, 0.4 ms per all-reduce
    every = check_interval(step_s, cost_s, check_s=10.0)
    assert cost_s / (every * step_s) <= STOP_CHECK_BUDGET  # cheap enough
    assert cost_s / ((every - 1) * step_s) > STOP_CHECK_BUDGET  # ... and the smallest such K
    assert every * step_s <= 10.0
    # a costly check would need 1000 steps of 1 ms, but a signal must count within 0.5 s
    assert check_interval(0.001, 0.005, check_s=0.5) == 500
    assert check_interval(1.0, 0.0, check_s=10.0) == 1  # a free check: every point


def test_lazy_average_lends_the_average_and_gives_each_rank_its_own_stats_back():
    bn = torch.nn.BatchNorm1d(3)
    bn(torch.randn(8, 3))  # own running stats, away from the init
    own_before = bn.running_mean.clone()

    def fake_average():  # what another rank's stats would make the average
        bn.running_mean.mul_(0.5)

    lazy = LazyBufferAverage({"g": bn}, fake_average)
    with lazy.averaged() as own:
        assert torch.equal(bn.running_mean, own_before * 0.5)  # readers see the average
        assert torch.equal(own["g.running_mean"], own_before)  # the checkpoint gets the own stats
    assert torch.equal(bn.running_mean, own_before)  # training continues from its own stats
    with lazy.averaged(keep=True):
        pass
    assert torch.equal(bn.running_mean, own_before * 0.5)  # the end of training keeps the average
    assert lazy.collectives == 2


def test_micro_batches_split_every_tensor_and_keep_none():
    x, y = torch.arange(8), torch.arange(8) * 10
    parts = step.micro_batches(4, x, None, y)
    assert len(parts) == 4
    assert all(p[1] is None for p in parts)
    assert torch.equal(torch.cat([p[0] for p in parts]), x) and torch.equal(parts[3][2], y[6:])
    means = step.mean_of([{"loss": torch.tensor(1.0)}, {"loss": torch.tensor(3.0)}])
    assert float(means["loss"]) == 2.0


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.grad_accum=0"], "train.grad_accum: must be >= 1, got 0"),
        (["data.batch_size=16", "train.grad_accum=3"], "train.grad_accum: splits the per-process batch 16"),
        (
            [
                "data.source=toy",
                "data.path=ring8",
                "model.arch=mlp",
                "data.batch_size=16",
                "model.pack=4",
                "train.grad_accum=8",
            ],
            "multiple of model.pack=4",
        ),
    ],
)
def test_bad_grad_accum_is_a_clear_config_error(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("+", r"\+")):
        load_config(None, ["data.source=embedded", *overrides])


def test_deepspeed_uses_its_own_accumulation_with_the_same_global_batch():
    cfg = load_config(
        None, ["data.source=embedded", "data.batch_size=64", "train.grad_accum=4"], world_size=2
    )
    ds = deepspeed_config(cfg, world_size=2)
    assert ds["gradient_accumulation_steps"] == 4
    assert ds["train_micro_batch_size_per_gpu"] == 8  # 64 / 2 processes / 4 micro-batches
    assert ds["train_batch_size"] == 64 == ds["train_micro_batch_size_per_gpu"] * 4 * 2


class _Printer:
    def __init__(self):
        self.lines = []

    def print(self, line):
        self.lines.append(line)


class _Backend:
    def __init__(self, norm):
        self.generator_module = torch.nn.Sequential(torch.nn.Linear(2, 2))
        self.discriminator_module = torch.nn.Sequential(norm)


@pytest.mark.parametrize(
    "accum, norm, warned",
    [
        (4, torch.nn.BatchNorm1d(2), True),
        (1, torch.nn.BatchNorm1d(2), False),
        (4, torch.nn.LayerNorm(2), False),
    ],
)
def test_accumulation_with_batchnorm_warns_at_start(accum, norm, warned):
    cfg = load_config(None, ["data.source=embedded", "data.batch_size=64", f"train.grad_accum={accum}"])
    printer = _Printer()
    step.warn_batchnorm_accumulation(cfg.train.grad_accum, _Backend(norm), 64, printer.print)
    assert bool(printer.lines) == warned
    if warned:
        assert (
            "train.grad_accum=4 with BatchNorm" in printer.lines[0]
            and "micro-batch of 16" in printer.lines[0]
        )


def test_fp16_hot_path_never_reads_the_loss_scale_on_the_host(fresh_accelerate):
    """The penalty gets the scaler's own device tensor and skipped steps are counted on the device:
    a host read of the scale (`get_scale()`, an `.item()`: a GPU sync per D step) fails here."""
    from tests.distributed.test_mixed_precision import fp16_backend

    cfg = load_config(None, ["model.arch=mlp", "model.g_width=4", "model.d_width=4", "model.latent_dim=8",
                             "data.batch_size=4", "objective.loss=wgan-gp", "train.grad_accum=2"])  # fmt: skip
    backend = fp16_backend(cfg)
    scaler = backend.accelerator.scaler
    images = torch.rand(4, 1, 28, 28) * 2 - 1
    step.d_step(backend, cfg, Batch(images, None))  # the scaler now holds its scale tensor

    def host_read():
        raise AssertionError("the loss scale was read on the host")

    scaler.get_scale = host_read
    assert backend.loss_scale() is scaler._get_scale_async()  # the very device tensor, no copy
    poisoned = images.clone()
    poisoned[0, 0, 0, 0] = float("inf")
    out = step.d_step(backend, cfg, Batch(poisoned, None))  # overflow in the 2nd micro-batch's rows
    assert torch.is_tensor(out["d_skipped_steps"]) and float(out["d_skipped_steps"]) == 1.0
    out = step.g_step(backend, cfg, 4, "cpu")
    assert torch.is_tensor(out["g_skipped_steps"]) and float(out["g_skipped_steps"]) == 0.0
