"""A DDP run never imports deepspeed (installed or not): importing it prints DeepSpeed's
"Setting accelerator to CPU" on every run and costs seconds. The backend keeps the plain modules it
handed to `accelerator.prepare` instead of asking accelerate to unwrap them (which imports it)."""

import sys

import pytest
import torch

from distgan.config import load_config
from distgan.distributed import build_accelerator, build_backend
from distgan.models import build_discriminator, build_generator
from tests.conftest import TINY


class RefuseDeepSpeed:
    """A meta-path finder that fails every import of deepspeed."""

    def find_spec(self, name, path=None, target=None):
        if name == "deepspeed" or name.startswith("deepspeed."):
            raise ImportError(f"{name} imported by a DDP run")
        return None


@pytest.fixture
def no_deepspeed(monkeypatch):
    for name in [m for m in sys.modules if m == "deepspeed" or m.startswith("deepspeed.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [RefuseDeepSpeed(), *sys.meta_path])


def test_the_ddp_backend_builds_and_steps_without_importing_deepspeed(fresh_accelerate, no_deepspeed):
    cfg = load_config("configs/quickstart.yaml", TINY)
    accelerator = build_accelerator(cfg)
    generator = build_generator(cfg.model, cfg.sample_shape)
    discriminator = build_discriminator(cfg.model, cfg.sample_shape)
    backend = build_backend(accelerator, cfg, generator, discriminator)
    assert backend.generator_module is generator and backend.discriminator_module is discriminator
    labels = torch.arange(4) % 10
    loss = backend.discriminator_module(torch.randn(4, 1, 28, 28), labels).mean()
    backend.update("d", loss)
    assert "deepspeed" not in sys.modules
