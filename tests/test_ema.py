"""GeneratorEMA: the exact average after k updates, its warm-up schedule, and copied buffers."""

import pytest
import torch
from torch import nn

from distgan.ema import GeneratorEMA


def tiny_generator() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))


def set_weights(model: nn.Module, value: float) -> None:
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            p.fill_(value + i)


def test_decay_warms_up_as_1_plus_step_over_10_plus_step_then_stays_at_decay():
    ema = GeneratorEMA(tiny_generator(), decay=0.9)
    assert ema.decay_at(0) == pytest.approx(1 / 10)
    assert ema.decay_at(1) == pytest.approx(2 / 11)
    assert ema.decay_at(10) == pytest.approx(11 / 20)
    assert ema.decay_at(80) == pytest.approx(81 / 90)  # just below 0.9
    assert ema.decay_at(81) == pytest.approx(0.9)
    assert ema.decay_at(10_000) == pytest.approx(0.9)


@pytest.mark.parametrize("decay", [0.5, 0.9, 0.999])
def test_ema_equals_the_hand_computed_average_after_k_updates(decay):
    generator = tiny_generator()
    set_weights(generator, 1.0)
    ema = GeneratorEMA(generator, decay)
    expected = {n: p.detach().double().clone() for n, p in generator.named_parameters()}
    for step, value in [(1, 3.0), (2, -2.0), (3, 5.0), (200, 7.0), (201, -1.0)]:
        set_weights(generator, value)
        ema.update(generator, step)
        d = min(decay, (1 + step) / (10 + step))
        for n, p in generator.named_parameters():
            expected[n] = d * expected[n] + (1 - d) * p.detach().double()
    for n, p in ema.model.named_parameters():
        assert torch.allclose(p.double(), expected[n], rtol=1e-6, atol=1e-6), n
    # not trivially equal to the current weights
    assert not torch.allclose(ema.model[0].weight, generator[0].weight)


def test_ema_copies_buffers_and_is_frozen():
    generator = tiny_generator()
    ema = GeneratorEMA(generator, 0.99)
    generator.train()(torch.randn(16, 3) * 4 + 2)  # moves BatchNorm running stats
    ema.update(generator, 1)
    bn_gen, bn_ema = generator[1], ema.model[1]
    assert torch.equal(bn_ema.running_mean, bn_gen.running_mean)
    assert torch.equal(bn_ema.running_var, bn_gen.running_var)
    assert not bn_ema.training and not any(p.requires_grad for p in ema.model.parameters())
