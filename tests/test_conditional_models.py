"""The conditional path trains: one d_step + g_step per architecture, and D's answer depends on whether
the image matches the label (not only on the label)."""

import pytest
import torch

from distgan.step import d_step, g_step
from tests.backend_helpers import TOY, changed, make, random_batch, snapshot

ARCHS = {
    "mlp-28": ["model.arch=mlp", "data.resolution=28", "model.conditioning=concat"],
    "dcgan-28": ["data.resolution=28", "model.conditioning=concat"],
    "dcgan-28-projection": ["data.resolution=28", "model.conditioning=projection"],
    "dcgan-32": ["data.resolution=32", "model.conditioning=concat"],
    "dcgan-64": ["data.resolution=64", "model.channels=3", "model.conditioning=projection"],
    "toy-mlp": [*TOY, "model.conditioning=concat"],
}


@pytest.mark.parametrize("overrides", ARCHS.values(), ids=ARCHS.keys())
@pytest.mark.parametrize("loss", ["nonsaturating", "wgan-gp"])
def test_conditional_models_train_one_step_on_every_architecture(overrides, loss, fresh_accelerate):
    cfg, backend = make([*overrides, "model.num_classes=10", f"objective.loss={loss}"])
    g, d = backend.generator_module, backend.discriminator_module
    batch = random_batch(cfg)
    batch.labels = batch.labels % 10
    g_before, d_before = snapshot(g), snapshot(d)
    d_out = d_step(backend, cfg, batch)
    g_out = g_step(backend, cfg, cfg.data.batch_size, torch.device("cpu"))
    assert torch.isfinite(d_out["loss"]) and torch.isfinite(g_out["loss"])
    d_moved, g_moved = set(changed(d_before, d)), set(changed(g_before, g))
    # the class embeddings are on the gradient path of both models, under every loss (a class term
    # that only adds to D's logit cancels in E[D(fake)] - E[D(real)] under WGAN-GP and never moves)
    assert any("embed" in name or "projection" in name for name in d_moved), sorted(d_moved)
    assert any("embed" in name for name in g_moved), sorted(g_moved)
    # and the label changes what each model computes
    latent, x = torch.randn(4, cfg.model.latent_dim), batch.images[:4]
    zeros, sevens = torch.zeros(4, dtype=torch.long), torch.full((4,), 7)
    with torch.no_grad():
        g.eval(), d.eval()
        assert not torch.allclose(g(latent, zeros), g(latent, sevens))
        label_effect = d(x, zeros) - d(x, sevens)
        # D can tell whether an image fits its label: the label's effect differs between images. A
        # label term added to the logit shifts every image alike and G learns to ignore its label.
        assert label_effect.abs().min() > 0, label_effect
        assert label_effect.std() > 1e-3 * label_effect.abs().mean(), label_effect


def test_a_conditional_models_sample_grid_has_one_column_per_class():
    from distgan.grids import samples_picture

    # 64 samples with labels cycling 0..9, each image filled with its class's own grey level
    levels = torch.linspace(-0.9, 0.9, 10)
    images = levels[torch.arange(64) % 10].view(64, 1, 1, 1).expand(64, 1, 28, 28)
    grid = samples_picture(images, num_classes=10)
    assert grid.shape == (7 * 30 + 2, 10 * 30 + 2, 3)  # 7 rows (the last holds 4), 2 px padding
    for row in range(7):
        for col in range(10 if row < 6 else 4):
            y, x = 2 + row * 30, 2 + col * 30
            expected = round((float(levels[col]) + 1) * 127.5)
            assert (grid[y : y + 28, x : x + 28] == expected).all(), (row, col)
