"""The conditional path trains: one d_step + g_step per architecture, and labels change D's answer."""

import pytest
import torch

from distgan.trainer import d_step, g_step
from tests.backend_helpers import TOY, changed, make, random_batch, snapshot

ARCHS = {
    "mlp-28": ["model.arch=mlp", "data.resolution=28"],
    "dcgan-28": ["data.resolution=28"],
    "dcgan-32": ["data.resolution=32"],
    "dcgan-64": ["data.resolution=64", "model.channels=3"],
    "toy-mlp": TOY,
}


@pytest.mark.parametrize("overrides", ARCHS.values(), ids=ARCHS.keys())
@pytest.mark.parametrize("loss", ["nonsaturating", "wgan-gp"])
def test_conditional_models_train_one_step_on_every_architecture(overrides, loss, fresh_accelerate):
    cfg, backend = make([*overrides, "model.num_classes=10", f"objective.loss={loss}"])
    g, d = backend.generator_module, backend.critic_module
    batch = random_batch(cfg)
    batch.labels = batch.labels % 10
    g_before, d_before = snapshot(g), snapshot(d)
    d_out = d_step(backend, cfg, batch)
    g_out = g_step(backend, cfg, cfg.data.batch_size, torch.device("cpu"))
    assert torch.isfinite(d_out["loss"]) and torch.isfinite(g_out["loss"])
    d_moved, g_moved = set(changed(d_before, d)), set(changed(g_before, g))
    # the class embeddings are on the gradient path of both models (except DCGAN's critic under
    # WGAN-GP: its embedding enters the last linear layer additively, real and fake share the
    # labels, so the term cancels in E[D(fake)] - E[D(real)] and in the input gradient)
    if loss == "nonsaturating" or cfg.model.arch == "mlp":
        assert any("embed" in name for name in d_moved), sorted(d_moved)
    assert any("embed" in name for name in g_moved), sorted(g_moved)
    # and the label changes what each model computes
    latent, x = torch.randn(4, cfg.model.latent_dim), batch.images[:4]
    zeros, sevens = torch.zeros(4, dtype=torch.long), torch.full((4,), 7)
    with torch.no_grad():
        g.eval(), d.eval()
        assert not torch.allclose(g(latent, zeros), g(latent, sevens))
        assert not torch.allclose(d(x, zeros), d(x, sevens))
