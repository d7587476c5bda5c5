"""Phase isolation and clipping on the real backend: d_step trains D only, g_step trains G only."""

import pytest
import torch

from distgan.step import d_step, g_step
from tests.backend_helpers import TOY, changed, make, random_batch, snapshot

CASES = {
    "toy-mlp-wgan": [*TOY, "objective.loss=wgan-gp"],
    "dcgan-nonsaturating": [],
    "dcgan-batchnorm-hinge": ["model.d_norm=batch", "objective.loss=hinge"],
}


@pytest.mark.parametrize("overrides", CASES.values(), ids=CASES.keys())
def test_d_step_changes_d_and_leaves_g_weights_and_grads_alone(overrides, fresh_accelerate):
    cfg, backend = make(overrides)
    g, d = backend.generator_module, backend.discriminator_module
    g_before, d_before = snapshot(g), snapshot(d)
    d_step(backend, cfg, random_batch(cfg))
    assert changed(g_before, g) == []
    # the fake batch is detached: the D loss reaches no G parameter
    assert all(p.grad is None for p in g.parameters())
    # every weight moves (a WGAN critic's last bias legitimately gets no gradient: it cancels)
    assert set(changed(d_before, d)) >= {name for name, _ in d.named_parameters() if name.endswith("weight")}


@pytest.mark.parametrize("overrides", CASES.values(), ids=CASES.keys())
def test_g_step_changes_g_and_leaves_d_weights_and_grads_alone(overrides, fresh_accelerate):
    cfg, backend = make(overrides)
    g, d = backend.generator_module, backend.discriminator_module
    d_step(backend, cfg, random_batch(cfg))  # D holds gradients from its own step now
    for p in d.parameters():
        p.grad = None
    g_before, d_before = snapshot(g), snapshot(d)
    g_step(backend, cfg, cfg.data.batch_size, torch.device("cpu"))
    assert changed(d_before, d) == []
    assert all(p.grad is None for p in d.parameters())  # D frozen: no gradient computed for it
    assert all(p.requires_grad for p in d.parameters())  # and trainable again afterwards
    assert {name for name, _ in g.named_parameters()} <= set(changed(g_before, g))


def _grad_norm(params) -> float:
    grads = [p.grad.detach().flatten() for p in params if p.grad is not None]
    return float(torch.cat(grads).norm())


@pytest.mark.parametrize("clip", [0.001, 0.003])
def test_gradients_are_clipped_to_grad_clip_at_the_optimizer_step(clip, fresh_accelerate):
    cfg, backend = make([f"optim.grad_clip={clip}"])
    seen = {}
    for name, model in (("d", backend.discriminator_module), ("g", backend.generator_module)):
        params = list(model.parameters())
        backend.optimizers[name].optimizer.register_step_pre_hook(
            lambda opt, args, kwargs, name=name, params=params: seen.__setitem__(name, _grad_norm(params))
        )
    d_out = d_step(backend, cfg, random_batch(cfg))
    g_out = g_step(backend, cfg, cfg.data.batch_size, torch.device("cpu"))
    for name, out in (("d", d_out), ("g", g_out)):
        unclipped = float(out[f"{name}_grad_norm"])
        assert unclipped > 2 * clip, (name, unclipped)  # it had something to clip
        assert seen[name] == pytest.approx(clip, rel=1e-3), (name, seen[name])


def test_without_grad_clip_the_step_sees_the_raw_gradient(fresh_accelerate):
    cfg, backend = make([])
    seen = {}
    params = list(backend.discriminator_module.parameters())
    backend.optimizers["d"].optimizer.register_step_pre_hook(
        lambda opt, args, kwargs: seen.__setitem__("d", _grad_norm(params))
    )
    out = d_step(backend, cfg, random_batch(cfg))
    assert "d_grad_norm" not in out
    assert seen["d"] > 0.01  # larger than the clip values above: those tests really clip


def test_each_update_starts_from_zero_gradients(fresh_accelerate):
    """Two identical D steps see identical gradients at the step (not the sum of both)."""
    cfg, backend = make(["optim.d.lr=1e-12", "model.d_dropout=0"])  # weights barely move
    seen = []
    params = list(backend.discriminator_module.parameters())
    backend.optimizers["d"].optimizer.register_step_pre_hook(
        lambda opt, args, kwargs: seen.append(_grad_norm(params))
    )
    batch, latent = random_batch(cfg), torch.randn(cfg.data.batch_size, cfg.model.latent_dim)
    d_step(backend, cfg, batch, latent=latent)
    d_step(backend, cfg, batch, latent=latent)
    assert seen[1] == pytest.approx(seen[0], rel=1e-4) and seen[0] > 0
