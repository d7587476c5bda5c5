"""Combinations users run, each checked against what it should compute:

- the penalty under every augmentation policy: R1 is the gradient of D(T_real(x)) at the real
  batch, WGAN-GP's the gradient of D(T_real(x_hat)) at the interpolates of the un-augmented
  batches: the real batch's augmentation, never the fake's, never none when D sees augmented reals;
- D's scores of the real and the fake batch (pure batches for a BatchNorm D); lazy R1 under
  gradient accumulation;
- a rollback under an lr decay: the rollback's factor stays on every later step's scheduled lr,
  and the replayed steps draw new noise;
- a conditional G step draws every class with the same frequency.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from distgan import augment, step
from distgan.config import load_config
from distgan.trainer import TrainHooks, train
from tests.backend_helpers import SMALL, TOY, make, random_batch

ALL_OPS = "augment.ops=[xflip,translation,color,cutout]"
POLICIES = {
    "none": ["augment.policy=none"],
    "diffaugment": ["augment.policy=diffaugment", ALL_OPS],
    "ada": ["augment.policy=ada", ALL_OPS],
}
OBJECTIVES = {
    "r1": ["objective.loss=nonsaturating", "objective.r1_weight=1.0"],
    "wgan-gp": ["objective.loss=wgan-gp", "objective.r1_weight=0", "objective.gp_weight=10"],
}


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_the_penalty_sees_the_real_batch_through_the_real_batchs_augmentation(
    policy, objective, fresh_accelerate
):
    cfg, backend = make([*POLICIES[policy], *OBJECTIVES[objective], "model.num_classes=0"])
    batch = random_batch(cfg)
    n, side = cfg.data.batch_size, cfg.data.resolution
    latent = torch.randn(n, cfg.model.latent_dim, generator=torch.Generator().manual_seed(2))
    alpha = torch.rand(n, generator=torch.Generator().manual_seed(3))
    p = 0.0 if policy == "none" else 0.9  # ada: most ops on, some off
    params = (
        None
        if policy == "none"
        else tuple(
            augment.draw(cfg.augment, n, side, p, "cpu", torch.Generator().manual_seed(seed))
            for seed in (4, 5)
        )
    )
    critic = copy.deepcopy(backend.discriminator_module)  # D before the step, for the hand computation
    generator = copy.deepcopy(backend.generator_module)
    with torch.no_grad():
        fake = generator(latent, None)

    def seen(x):  # what D sees of the REAL batch
        return x if params is None else augment.apply(x, params[0])

    if objective == "r1":
        x = batch.images.clone().requires_grad_(True)
        (grads,) = torch.autograd.grad(critic(seen(x), None).sum(), x)
        expected = grads.flatten(1).pow(2).sum(1).mean()
    else:
        a = alpha.view(-1, 1, 1, 1)
        x_hat = (a * batch.images + (1 - a) * fake).requires_grad_(True)
        (grads,) = torch.autograd.grad(critic(seen(x_hat), None).sum(), x_hat)
        expected = ((grads.flatten(1).norm(dim=1) - 1) ** 2).mean()
    losses = step.d_step(
        backend, cfg, batch, latent, alpha, augment_p=p, augment_params=params, r1_due=True
    )  # fmt: skip
    assert losses[objective.replace("wgan-", "")].item() == pytest.approx(expected.item(), rel=1e-4)
    if params is not None:  # the check can tell the real's augmentation from the fake's and from none
        x = batch.images.clone().requires_grad_(True)
        (other,) = torch.autograd.grad(critic(augment.apply(x, params[1]), None).sum(), x)
        (plain,) = torch.autograd.grad(critic(x, None).sum(), x)
        assert not torch.allclose(other, plain) and not torch.allclose(grads, plain)


@pytest.mark.parametrize("d_norm", ["none", "batch"])
def test_d_scores_the_augmented_real_and_fake_batches_as_the_step_reports(d_norm, fresh_accelerate):
    """d_real / d_fake are D on T_real(real) and T_fake(G(z)); a BatchNorm D sees each batch on
    its own (pure batches), as it sees the fakes alone in the G step."""
    cfg, backend = make([*POLICIES["diffaugment"], f"model.d_norm={d_norm}", "model.num_classes=0"])
    batch, n = random_batch(cfg), cfg.data.batch_size
    latent = torch.randn(n, cfg.model.latent_dim, generator=torch.Generator().manual_seed(2))
    params = tuple(
        augment.draw(cfg.augment, n, cfg.data.resolution, 1.0, "cpu", torch.Generator().manual_seed(seed))
        for seed in (4, 5)
    )
    critic, generator = copy.deepcopy(backend.discriminator_module), copy.deepcopy(backend.generator_module)
    with torch.no_grad():
        fake = generator(latent, None)
        d_real = critic(augment.apply(batch.images, params[0]), None).float()
        d_fake = critic(augment.apply(fake, params[1]), None).float()
    losses = step.d_step(backend, cfg, batch, latent, augment_params=params, r1_due=False)
    assert losses["d_real"].item() == pytest.approx(d_real.mean().item(), rel=1e-4, abs=1e-5)
    assert losses["d_fake"].item() == pytest.approx(d_fake.mean().item(), rel=1e-4, abs=1e-5)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
    assert losses["d_adversarial"].item() == pytest.approx(expected.item(), rel=1e-4)


@pytest.mark.parametrize("grad_accum", [1, 2, 4])
def test_lazy_r1_falls_on_every_nth_d_step_whatever_the_accumulation(grad_accum):
    cfg = load_config(
        "configs/quickstart.yaml",
        ["objective.r1_every=4", f"train.grad_accum={grad_accum}", "data.batch_size=16"],
    )
    phases = step.Phases(None, step.PhaseSettings.of(cfg), None)
    due = [phases.regularize_d(images_seen=d_step * 16) for d_step in range(12)]  # images before D step k
    assert due == [True, False, False, False] * 3


def test_a_rollback_under_an_lr_decay_keeps_its_factor_on_every_later_step(tmp_path, fresh_accelerate):
    """D's lr made infinite for one D step (5, in G step index 4): the run rolls back to the step-4
    checkpoint with both lrs x0.5, and every later G and D step uses decay(step) x 0.5."""
    steps, d_lr, g_lr = 8, 1e-3, 2e-3
    cfg = load_config(
        "configs/quickstart.yaml",
        [
            *SMALL,
            *TOY,
            f"train.out_dir={tmp_path / 'run'}",
            f"train.steps={steps}",
            f"optim.d.lr={d_lr}",
            f"optim.g.lr={g_lr}",
            "optim.lr_decay_start=0.25",
            "train.on_nonfinite=rollback",
            "train.rollback_lr_factor=0.5",
            "checkpoint.every=2",
            "checkpoint.keep_last=2",
            "log.every=1",
            "log.sample_every=0",
            "log.num_samples=4",
            "train.ema_decay=0",
        ],
    )
    seen = {"d": [], "g": []}

    def before_d(backend, batch):
        seen["d"].append(backend.optimizers["d"].param_groups[0]["lr"])
        if len(seen["d"]) == 5:
            for group in backend.optimizers["d"].param_groups:
                group["lr"] = float("inf")

    latents = []  # G's input in each D step and G step, in order

    def on_backend(backend):
        backend.generator_module.register_forward_pre_hook(lambda m, args: latents.append(args[0].clone()))

    hooks = TrainHooks(
        on_backend=on_backend,
        before_d_step=before_d,
        before_g_step=lambda backend: seen["g"].append(backend.optimizers["g"].param_groups[0]["lr"]),
    )
    assert train(cfg, resume="never", hooks=hooks) == 0
    # after the rollback: new noise, never a replay of noise drawn before (by the checkpoint's RNG
    # or by the run's first seed)
    replayed_d_step = latents[10]  # calls: D1 G1 ... D5 G5, then the rollback's first D step
    assert not any(torch.equal(replayed_d_step, earlier) for earlier in latents[:10])
    factor = [cfg.optim.lr_factor(s, steps) for s in range(steps)]
    assert factor[4:] == pytest.approx([4 / 6, 3 / 6, 2 / 6, 1 / 6])  # the decay is under way
    # G steps 0..4 (the fifth diverged), then the rollback to step 4 and steps 4..7 again at x0.5
    expected_g = [g_lr * f for f in factor[:5]] + [0.5 * g_lr * f for f in factor[4:]]
    assert seen["g"] == pytest.approx(expected_g)
    expected_d = [d_lr * f for f in factor[:5]] + [0.5 * d_lr * f for f in factor[4:]]
    assert seen["d"] == pytest.approx(expected_d)


def test_a_conditional_g_step_draws_every_class_equally_often(fresh_accelerate):
    cfg, backend = make(["model.num_classes=10", "augment.policy=none"])
    drawn = []
    backend.generator_module.register_forward_pre_hook(lambda module, args: drawn.append(args[1].clone()))
    count = 500
    step.g_step(backend, cfg, count, "cpu")
    step.g_step(backend, cfg, count, "cpu")
    first, second = drawn[0], drawn[-1]
    assert first.shape == (count,) and not torch.equal(first, second)  # fresh labels every step
    labels = torch.cat([first, second])
    for c in range(10):
        share = (labels == c).float().mean().item()
        assert abs(share - 0.1) <= 5 * math.sqrt(0.1 * 0.9 / len(labels)), (c, share)
    assert set(labels.tolist()) == set(range(10))
