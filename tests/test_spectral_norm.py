"""Spectral norm in real training runs (one process): the weights D's forward uses have largest
singular value ~1, and the power-iteration state (`parametrizations.weight.0._u` / `._v`) goes
through the safetensors checkpoint and comes back bitwise, so a resumed run equals a straight one.

The 2-process check (the buffers agree on every rank) is tests/distributed/test_spectral_norm_ranks.py.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from distgan.config import load_config
from distgan.generation import load_generator
from distgan.trainer import TrainHooks, train

SN_RESNET = [  # a tiny SN-ResNet (spectral norm on G and D) with hinge loss; also the rank test's
    "model.arch=resnet",
    "model.d_dropout=0",
    "model.spectral_norm=both",
    "model.g_width=4",
    "model.d_width=4",
    "data.resolution=32",
    "objective.loss=hinge",
    "objective.real_label=1.0",
]
RESNET = [
    *SN_RESNET,
    "model.num_classes=0",  # on the conditional quickstart: these tests count an unconditional D's weights
    "data.batch_size=8",
    # Large steps move the raw weights' largest singular value far from 1 within a few steps:
    # only the normalisation keeps the weights D's forward uses at 1.
    "optim.d.lr=0.02",
    "optim.g.lr=0.02",
    "train.ema_decay=0.9",
    "log.every=1",
    "log.sample_every=0",
]
STEPS, SPLIT = 4, 2


def resnet_cfg(out_dir, *extra):
    return load_config("configs/quickstart.yaml", [*RESNET, f"train.out_dir={out_dir}", *extra])


def normalised_layers(module: nn.Module) -> dict[str, nn.Module]:
    return {
        name: layer
        for name, layer in module.named_modules()
        if isinstance(layer, (nn.Conv2d, nn.Linear)) or name == "projection"
    }


def largest_singular_value(weight: torch.Tensor) -> float:
    return torch.linalg.matrix_norm(weight.detach().flatten(1).double(), ord=2).item()


def d_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A straight 4-step run and a 2 + 2 run resumed from its step-2 checkpoint, observed."""
    from accelerate.state import AcceleratorState, GradientState, PartialState

    root = tmp_path_factory.mktemp("sn")
    seen: dict = {"critic": {}, "at_resume": None}

    def keep_backend(name):
        return lambda backend: seen["critic"].__setitem__(name, backend.discriminator_module)

    def first_d_step(backend, batch):  # the resumed run's D before any forward: what restore loaded
        if seen["at_resume"] is None:
            seen["at_resume"] = d_state(backend.discriminator_module)

    for name, steps, hooks in (
        ("straight", STEPS, TrainHooks(on_backend=keep_backend("straight"))),
        ("split", SPLIT, TrainHooks()),
        ("split", STEPS, TrainHooks(on_backend=keep_backend("split"), before_d_step=first_d_step)),
    ):
        AcceleratorState._reset_state(True)
        GradientState._reset_state()
        PartialState._reset_state()
        cfg = resnet_cfg(root / name, f"train.steps={steps}", f"checkpoint.every={SPLIT}")
        assert train(cfg, hooks=hooks) == 0
    return root, seen


def test_every_d_weight_the_forward_uses_has_largest_singular_value_one(runs):
    _, seen = runs
    critic = seen["critic"]["straight"].eval()  # eval: the weight from the stored u, v, as the last forward
    layers = normalised_layers(critic)
    assert len(layers) == 11  # 4 blocks x 2 convs + 2 learned shortcuts + the head
    raw = []
    for name, layer in layers.items():
        sigma = largest_singular_value(layer.weight)
        assert abs(sigma - 1) < 0.02, f"{name}: largest singular value {sigma:.4f}"
        raw.append(largest_singular_value(layer.parametrizations.weight.original))
    # the raw weights moved away from 1 (orthogonal init starts them AT 1): the check is not vacuous
    assert max(abs(s - 1) for s in raw) > 0.2, raw


def test_power_iteration_state_round_trips_through_safetensors_bitwise(runs):
    root, seen = runs
    checkpoint = root / "split" / "checkpoints" / f"step_{SPLIT:07d}"
    saved = load_file(str(checkpoint / "discriminator.safetensors"))  # the one copy a resume reads
    buffers = [k for k in saved if k.endswith(("weight.0._u", "weight.0._v"))]
    assert len(buffers) == 2 * 11 and any(k.endswith("weight.original") for k in saved)
    restored = seen["at_resume"]
    assert restored.keys() == saved.keys()
    different = [k for k in saved if not torch.equal(saved[k], restored[k])]
    assert not different, f"restored D differs from the checkpoint in {different}"


def test_resumed_run_ends_bitwise_equal_to_the_straight_run(runs):
    root, seen = runs
    straight, split = seen["critic"]["straight"], seen["critic"]["split"]
    a, b = d_state(straight), d_state(split)
    assert any(k.endswith("_u") for k in a)
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"resumed D differs from the straight run's in {different}"
    for name in ("generator", "generator_ema"):  # G is normalised too (spectral_norm=both)
        end = f"step_{STEPS:07d}/{name}.safetensors"
        x, y = (load_file(str(root / run / "checkpoints" / end)) for run in ("straight", "split"))
        assert any(k.endswith("_v") for k in x)
        assert [k for k in x if not torch.equal(x[k], y[k])] == [], name
    # and users load the normalised EMA generator without the trainer (eval: the stored u, v)
    images = load_generator(root / "split").sample(2, seed=0)
    assert images.shape == (2, 1, 32, 32) and torch.isfinite(images).all()
