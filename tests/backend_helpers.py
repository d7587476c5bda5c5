"""In-process G, D and backend for one-step tests: the same objects train() builds, on one CPU process."""

from __future__ import annotations

import torch

from distgan.config import load_config
from distgan.data import Batch
from distgan.distributed import build_accelerator, build_backend
from distgan.models import build_discriminator, build_generator

TOY = ["data.source=toy", "data.path=ring8", "model.arch=mlp", "model.latent_dim=2", "model.num_classes=0"]
SMALL = ["model.g_width=8", "model.d_width=8", "data.batch_size=8"]


def make(overrides, config="configs/quickstart.yaml", seed=0):
    """(cfg, backend) for `overrides`; call inside the `fresh_accelerate` fixture."""
    cfg = load_config(config, [*SMALL, *overrides])
    accelerator = build_accelerator(cfg)
    torch.manual_seed(seed)
    return cfg, build_backend(
        accelerator,
        cfg,
        build_generator(cfg.model, cfg.sample_shape),
        build_discriminator(cfg.model, cfg.sample_shape),
    )


def random_batch(cfg, seed=1) -> Batch:
    rng = torch.Generator().manual_seed(seed)
    images = torch.rand(cfg.data.batch_size, *cfg.sample_shape, generator=rng) * 2 - 1
    num_classes = max(cfg.model.num_classes, 2)
    return Batch(images, torch.randint(0, num_classes, (cfg.data.batch_size,), generator=rng))


def snapshot(module) -> dict[str, torch.Tensor]:
    """Parameters only: BatchNorm running stats legitimately move in any training-mode forward."""
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def changed(before: dict, module) -> list[str]:
    """Names of the parameters of `module` that differ from `before`."""
    return [k for k, v in module.named_parameters() if not torch.equal(before[k], v)]
