"""Every loss and regulariser equals an independent hand computation, weights included."""

import math

import pytest
import torch
from torch import nn

from distgan import objectives
from distgan.config import ObjectiveConfig


class QuadraticCritic(nn.Module):
    """D(x) = c/2 ||x||^2 + <w, x>: input gradient c x + w, which depends on x (unlike a linear D)."""

    def __init__(self, c: float, w: torch.Tensor) -> None:
        super().__init__()
        self.c, self.w = c, nn.Parameter(w)
        self.inputs = []

    def forward(self, x, labels=None):
        self.inputs.append(x.detach().clone())
        flat = x.flatten(1)
        return 0.5 * self.c * flat.pow(2).sum(1) + (flat * self.w).sum(1)


def grad_norms(critic: QuadraticCritic, x: torch.Tensor) -> torch.Tensor:
    g = critic.c * x.double().flatten(1) + critic.w.detach().double()
    return g.pow(2).sum(1).sqrt()


def bce_logits(x: torch.Tensor, target: float) -> torch.Tensor:
    x = x.double()
    p = 1 / (1 + torch.exp(-x))
    return -(target * torch.log(p) + (1 - target) * torch.log(1 - p)).mean()


@pytest.fixture
def data():
    torch.manual_seed(0)
    real, fake = torch.randn(6, 4), torch.randn(6, 4)
    critic = QuadraticCritic(0.7, torch.randn(4))
    return critic, real, fake, torch.rand(6)


def test_gradient_penalty_draws_one_alpha_per_sample_itself(data):
    critic, _, _, _ = data
    critic.w.data.zero_()  # gradient = c * x_hat: the penalty depends on where x_hat lies
    n = 256
    real, fake = torch.randn(n, 4), torch.randn(n, 4)
    torch.manual_seed(123)
    penalty, _ = objectives.gradient_penalty(critic, real, fake)
    torch.manual_seed(123)
    alpha = torch.rand(n)
    per_sample = ((grad_norms(critic, alpha[:, None] * real + (1 - alpha[:, None]) * fake) - 1) ** 2).mean()
    one_alpha = ((grad_norms(critic, alpha[0] * real + (1 - alpha[0]) * fake) - 1) ** 2).mean()
    assert penalty.item() == pytest.approx(per_sample.item(), rel=1e-5)
    assert abs(per_sample.item() - one_alpha.item()) > 1e-3 * per_sample.item()
    # Independently of how the draw is written: every x_hat lies on its own segment, at its own alpha.
    x_hat = critic.inputs[-1]
    d = real - fake
    recovered = ((x_hat - fake) * d).sum(1) / d.pow(2).sum(1)
    assert torch.allclose(x_hat, recovered[:, None] * real + (1 - recovered[:, None]) * fake, atol=1e-5)
    assert recovered.min() >= -1e-5 and recovered.max() <= 1 + 1e-5
    assert 0.2 < recovered.std().item() < 0.4  # U[0, 1]: std 0.289; one shared alpha: std 0
    assert 0.4 < recovered.mean().item() < 0.6


@pytest.mark.parametrize("gp_weight", [0.0, 0.1, 10.0])
@pytest.mark.parametrize("r1_weight", [0.0, 2.0])
def test_wgan_gp_loss_is_wasserstein_plus_lambda_gp_plus_half_gamma_r1(data, gp_weight, r1_weight):
    critic, real, fake, alpha = data
    d_real, d_fake = critic(real), critic(fake)
    cfg = ObjectiveConfig(loss="wasserstein", penalty="gp", gp_weight=gp_weight, r1_weight=r1_weight)
    out = objectives.discriminator_losses(cfg, d_real, d_fake, critic, real, fake, alpha=alpha)
    x_hat = alpha[:, None] * real + (1 - alpha[:, None]) * fake
    gp = ((grad_norms(critic, x_hat) - 1) ** 2).mean()
    r1 = grad_norms(critic, real).pow(2).mean()
    adversarial = d_fake.double().mean() - d_real.double().mean()
    expected = adversarial + gp_weight * gp + 0.5 * r1_weight * r1
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert out["d_adversarial"].item() == pytest.approx(adversarial.item(), rel=1e-5)
    if gp_weight > 0:
        assert out["gp"].item() == pytest.approx(gp.item(), rel=1e-5)
        assert out["gp_grad_norm"].item() == pytest.approx(grad_norms(critic, x_hat).mean().item(), rel=1e-5)
    if r1_weight > 0:
        assert out["r1"].item() == pytest.approx(r1.item(), rel=1e-5)


@pytest.mark.parametrize("real_label", [1.0, 0.9])
@pytest.mark.parametrize("r1_weight", [0.0, 0.5, 10.0])
def test_nonsaturating_d_loss_is_bce_with_smoothing_plus_half_gamma_r1(data, real_label, r1_weight):
    critic, real, fake, _ = data
    d_real, d_fake = critic(real), critic(fake)
    cfg = ObjectiveConfig(loss="nonsaturating", real_label=real_label, r1_weight=r1_weight, gp_weight=10.0)
    out = objectives.discriminator_losses(cfg, d_real, d_fake, critic, real, fake)
    adversarial = bce_logits(d_real, real_label) + bce_logits(d_fake, 0.0)  # one-sided: fake target 0
    r1 = grad_norms(critic, real).pow(2).mean()
    assert out["d_adversarial"].item() == pytest.approx(adversarial.item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx((adversarial + 0.5 * r1_weight * r1).item(), rel=1e-5)
    assert "gp" not in out  # the gradient penalty only with objective.penalty=gp


@pytest.mark.parametrize("r1_weight", [0.0, 3.0])
def test_hinge_d_loss_is_two_relus_plus_half_gamma_r1(data, r1_weight):
    critic, real, fake, _ = data
    d_real, d_fake = (
        torch.tensor([2.0, 0.5, -1.0, 0.0, 3.0, -0.2]),
        torch.tensor([-2.0, 0.3, 1.5, -0.9, 0, 2]),
    )
    cfg = ObjectiveConfig(loss="hinge", r1_weight=r1_weight, gp_weight=10.0)
    out = objectives.discriminator_losses(cfg, d_real, d_fake, critic, real, fake)
    hinge = (
        sum(max(0.0, 1 - v) for v in d_real.tolist()) / 6 + sum(max(0.0, 1 + v) for v in d_fake.tolist()) / 6
    )
    r1 = grad_norms(critic, real).pow(2).mean().item()
    assert out["loss"].item() == pytest.approx(hinge + 0.5 * r1_weight * r1, rel=1e-5)
    assert "gp" not in out


def test_generator_losses_exact_for_each_objective():
    d_fake = torch.tensor([2.0, -1.0, 0.5, -3.0])
    expected = {
        "nonsaturating": sum(math.log1p(math.exp(-v)) for v in d_fake.tolist()) / 4,  # -log sigmoid
        "wasserstein": -d_fake.mean().item(),
        "hinge": -d_fake.mean().item(),  # G maximises D(G(z)): loss falls as D's score rises
    }
    for loss, value in expected.items():
        out = objectives.generator_losses(ObjectiveConfig(loss=loss), d_fake)
        assert out["loss"].item() == pytest.approx(value, rel=1e-6), loss
        assert out["g_d_fake"].item() == pytest.approx(-0.375)
    # signs: a higher critic score must lower every G loss
    for loss in expected:
        low = objectives.generator_losses(ObjectiveConfig(loss=loss), torch.zeros(4))["loss"]
        high = objectives.generator_losses(ObjectiveConfig(loss=loss), torch.ones(4))["loss"]
        assert high.item() < low.item(), loss


def test_r1_penalty_is_mean_squared_input_gradient_norm(data):
    critic, real, _, _ = data
    expected = grad_norms(critic, real).pow(2).mean().item()
    assert objectives.r1_penalty(critic, real).item() == pytest.approx(expected, rel=1e-5)
