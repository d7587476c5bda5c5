"""Fast-path regressions in the backend (issue 6): cheap module access, compile kept off the penalty.

`accelerator.unwrap_model` re-reads package metadata on every call (~2 ms); the loop asks for the
plain modules 4-5 times per iteration, so the backend must unwrap once. And the plain modules must
stay uncompiled after the trainer compiles G and D: torch.compile cannot double-backward (the
WGAN-GP penalty runs through `discriminator_module`) and would prefix checkpoint keys with `_orig_mod.`.
"""

import torch

from distgan.config import load_config
from distgan.distributed import build_accelerator, build_backend
from distgan.models import build_discriminator, build_generator
from tests.conftest import TINY


def tiny_backend():
    cfg = load_config("configs/quickstart.yaml", TINY)
    accelerator = build_accelerator(cfg)
    return accelerator, build_backend(
        accelerator,
        cfg,
        build_generator(cfg.model, cfg.sample_shape),
        build_discriminator(cfg.model, cfg.sample_shape),
    )


def test_plain_modules_do_not_unwrap_on_every_access(fresh_accelerate, monkeypatch):
    accelerator, backend = tiny_backend()
    calls = []
    real_unwrap = accelerator.unwrap_model
    monkeypatch.setattr(
        accelerator, "unwrap_model", lambda m, *a, **k: calls.append(m) or real_unwrap(m, *a, **k)
    )
    for _ in range(10):
        assert isinstance(backend.discriminator_module, torch.nn.Module)
        assert isinstance(backend.generator_module, torch.nn.Module)
    assert calls == []


def test_compiled_wrappers_never_reach_the_plain_modules(fresh_accelerate):
    _, backend = tiny_backend()
    plain_g, plain_d = backend.generator_module, backend.discriminator_module
    # what train() does with train.compile=true (compilation itself is lazy: nothing is compiled here)
    backend.generator, backend.discriminator = (
        torch.compile(backend.generator),
        torch.compile(backend.discriminator),
    )
    assert backend.discriminator_module is plain_d and backend.generator_module is plain_g
    for module in (backend.discriminator_module, backend.generator_module):
        assert not isinstance(module, torch._dynamo.eval_frame.OptimizedModule)
        assert not any(key.startswith("_orig_mod.") for key in module.state_dict())
    # and the penalty's double backward through the plain critic works
    x, labels = torch.randn(4, 1, 28, 28, requires_grad=True), torch.arange(4)
    (grad,) = torch.autograd.grad(backend.discriminator_module(x, labels).sum(), x, create_graph=True)
    grad.square().sum().backward()
    first_conv = backend.discriminator_module.features[0].weight  # the head's bias never reaches grad_x
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0


FAULTS_PROBE = """
import resource, torch
from distgan.config import load_config
from distgan.host_memory import keep_freed_host_memory
from distgan.models import build_discriminator, build_generator

torch.set_num_threads(1)
cfg = load_config("configs/quickstart.yaml", ["model.num_classes=0"])
generator, critic = build_generator(cfg.model, cfg.sample_shape), build_discriminator(cfg.model, cfg.sample_shape)

def faults_per_step():  # a critic step of the quickstart models, as the trainer runs it
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        fake = generator(torch.randn(64, cfg.model.latent_dim))
        critic(torch.cat([fake, fake])).sum().backward()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5

faults_per_step()
default = faults_per_step()
assert keep_freed_host_memory()
faults_per_step()
print(default, faults_per_step())
"""


def test_keeping_freed_host_memory_stops_per_step_page_faults():
    import subprocess
    import sys

    # a fresh process: the allocator setting is process-wide and train() in other tests sets it
    done = subprocess.run([sys.executable, "-c", FAULTS_PROBE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    default, kept = map(float, done.stdout.split())
    assert default > 1000  # ~15 MB of activations re-faulted in 4 KiB pages every step by default
    assert kept < default / 10
