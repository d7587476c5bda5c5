"""Loss math: penalties, label smoothing, shapes, dtypes."""

import math

import pytest
import torch
from torch import nn

from distgan import objectives
from distgan.config import ObjectiveConfig


class LinearCritic(nn.Module):
    """D(x) = <w, x>: gradient w.r.t. x is w everywhere, norm ||w||."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x, labels=None):
        return (x.flatten(1) * self.w).sum(1)


def test_gradient_penalty_zero_for_unit_lipschitz_critic():
    w = torch.randn(12)
    critic = LinearCritic(w / w.norm())
    real, fake = torch.randn(16, 3, 2, 2), torch.randn(16, 3, 2, 2)
    penalty, grad_norm = objectives.gradient_penalty(critic, real, fake)
    assert penalty.item() == pytest.approx(0.0, abs=1e-10)
    assert grad_norm.item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("scale", [0.5, 3.0])
def test_gradient_penalty_positive_and_exact_otherwise(scale):
    w = torch.randn(12)
    critic = LinearCritic(scale * w / w.norm())
    penalty, _ = objectives.gradient_penalty(critic, torch.randn(8, 12), torch.randn(8, 12))
    assert penalty.item() == pytest.approx((scale - 1) ** 2, rel=1e-5)


def test_gradient_penalty_is_differentiable_w_r_t_critic_parameters():
    critic = LinearCritic(torch.full((4,), 1.0))  # ||w|| = 2 -> penalty (2-1)^2, d/dw = 2(||w||-1) w/||w||
    penalty, _ = objectives.gradient_penalty(critic, torch.randn(5, 4), torch.randn(5, 4))
    penalty.backward()
    assert torch.allclose(critic.w.grad, torch.full((4,), 1.0), atol=1e-6)


def test_gradient_penalty_unscales_an_amp_loss_scale():
    w = torch.randn(6)
    critic = LinearCritic(2.0 * w / w.norm())
    real, fake = torch.randn(4, 6), torch.randn(4, 6)
    alpha = torch.rand(4)
    plain, _ = objectives.gradient_penalty(critic, real, fake, alpha=alpha)
    scaled, _ = objectives.gradient_penalty(critic, real, fake, alpha=alpha, loss_scale=65536.0)
    assert scaled.item() == pytest.approx(plain.item(), rel=1e-6)


def test_gradient_penalty_uses_one_alpha_per_sample():
    real, fake = torch.zeros(3, 2, 2), torch.ones(3, 2, 2)
    x_hat = objectives.interpolate(real, fake, torch.tensor([0.0, 0.5, 1.0]))
    assert torch.allclose(x_hat[:, 0, 0], torch.tensor([1.0, 0.5, 0.0]))
    assert x_hat.requires_grad


def test_r1_penalty_matches_squared_gradient_norm():
    critic = LinearCritic(torch.tensor([3.0, 4.0]))
    assert objectives.r1_penalty(critic, torch.randn(7, 2)).item() == pytest.approx(25.0)


def test_label_smoothing_sets_the_real_target_only():
    logits = torch.zeros(10)  # sigmoid = 0.5
    smooth = objectives.nonsaturating_d(logits, logits, real_label=0.9)
    plain = objectives.nonsaturating_d(logits, logits, real_label=1.0)
    # BCE(0.5, t) = log 2 for any target t; move real logits to see the target matter
    assert smooth.item() == pytest.approx(plain.item()) == pytest.approx(2 * math.log(2))
    real_logits = torch.full((10,), 5.0)
    smooth = objectives.nonsaturating_d(real_logits, logits, real_label=0.9)
    plain = objectives.nonsaturating_d(real_logits, logits, real_label=1.0)
    p = torch.sigmoid(torch.tensor(5.0))
    expected_smooth = -(0.9 * torch.log(p) + 0.1 * torch.log(1 - p)) + math.log(2)
    assert smooth.item() == pytest.approx(expected_smooth.item(), rel=1e-5)
    assert smooth.item() > plain.item()


@pytest.mark.parametrize(
    "loss, penalty", [("nonsaturating", "none"), ("wasserstein", "gp"), ("hinge", "none"), ("hinge", "gp")]
)
def test_phase_losses_are_fp32_scalars_with_named_entries(loss, penalty):
    critic = LinearCritic(torch.randn(6))
    real, fake = torch.randn(4, 6), torch.randn(4, 6)
    cfg = ObjectiveConfig(loss=loss, penalty=penalty)
    d = objectives.discriminator_losses(
        cfg, critic(real).bfloat16(), critic(fake).bfloat16(), critic, real, fake
    )
    g = objectives.generator_losses(cfg, critic(fake).bfloat16())
    for out in (d, g):
        assert out["loss"].shape == () and out["loss"].dtype == torch.float32
        assert out["loss"].requires_grad
    assert ("gp" in d) == (penalty == "gp")
    assert {"d_real", "d_fake", "d_adversarial"} <= set(d)


def test_wasserstein_and_hinge_values():
    d_real, d_fake = torch.tensor([2.0, 0.0]), torch.tensor([-1.0, 1.0])
    assert objectives.wasserstein_d(d_real, d_fake).item() == pytest.approx(0.0 - 1.0)
    assert objectives.wasserstein_g(d_fake).item() == pytest.approx(0.0)
    # hinge: relu(1-2)+relu(1-0) = 0+1 -> 0.5 ; relu(1-1)+relu(1+1) = 0+2 -> 1.0
    assert objectives.hinge_d(d_real, d_fake).item() == pytest.approx(1.5)
