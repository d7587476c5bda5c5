"""DiffAugment ops (distgan.augment): shape and range, gradients, hand-computed results, and the
trainer drawing independent augmentations for the real and the fake half of D's batch."""

from __future__ import annotations

import re

import pytest
import torch

from distgan import augment, step
from distgan.augment import ops
from distgan.config import ConfigError, load_config
from distgan.data import Batch
from distgan.distributed import Backend

CFG = load_config(None, ["augment.policy=diffaugment", "augment.ops=[xflip,translation,color,cutout]"])


def drawn(n=4, side=8, seed=0, p=1.0, cfg=CFG):
    return augment.draw(cfg.augment, n, side, p, "cpu", torch.Generator().manual_seed(seed))


def images(n=4, c=3, side=8, seed=1):
    return torch.rand(n, c, side, side, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# ------------------------------------------------------------------ shape and value range


def test_geometric_ops_preserve_shape_and_value_range():
    x, params = images(), drawn()
    assert params.shift.abs().max() > 0 and (params.cutout >= 0).any()  # the ops really act
    low, high = min(x.min(), 0.0), max(x.max(), 0.0)  # translation and cutout bring in 0 (mid-grey)
    for out in (
        ops.xflip(x, params.flip),
        ops.translate(x, params.shift),
        ops.cutout(x, params.cutout, params.cutout_size),
    ):
        assert out.shape == x.shape and out.dtype == x.dtype
        assert low <= out.min() and out.max() <= high
        # every output pixel is an input pixel of the same image and channel, or 0
        for i in range(len(x)):
            values = set(x[i].flatten().tolist()) | {0.0}
            assert set(out[i].flatten().tolist()) <= values


def test_color_ops_preserve_shape_and_their_invariants():
    """DiffAugment's colour ops are affine maps, as in the paper's code: brightness moves an image by
    one value in [-0.5, 0.5], saturation keeps each pixel's channel mean, contrast the image mean."""
    x, params = images(), drawn()
    shifted = ops.brightness(x, params.brightness)
    moved = (shifted - x).flatten(1)
    assert shifted.shape == x.shape
    assert torch.allclose(moved, moved[:, :1].expand_as(moved), atol=1e-6)
    assert moved.abs().max() <= 0.5
    saturated = ops.saturation(x, params.saturation)
    assert saturated.shape == x.shape
    assert torch.allclose(saturated.mean(1), x.mean(1), atol=1e-6)
    contrasted = ops.contrast(x, params.contrast)
    assert contrasted.shape == x.shape
    assert torch.allclose(contrasted.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=1e-6)
    assert not torch.allclose(saturated, x) and not torch.allclose(contrasted, x)


def test_full_pipeline_keeps_shape_dtype_and_device():
    x = images()
    out = augment.apply(x, drawn())
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert torch.allclose(augment.apply(x, drawn(p=0.0)), x, atol=1e-6)  # p = 0: every op at its identity


# ------------------------------------------------------------------ differentiable


@pytest.mark.parametrize(
    "op", ["xflip", "brightness", "saturation", "contrast", "translate", "cutout", "all"]
)
def test_ops_are_differentiable_wrt_the_images(op):
    params = drawn(n=2, side=5)
    calls = {
        "xflip": lambda x: ops.xflip(x, params.flip),
        "brightness": lambda x: ops.brightness(x, params.brightness),
        "saturation": lambda x: ops.saturation(x, params.saturation),
        "contrast": lambda x: ops.contrast(x, params.contrast),
        "translate": lambda x: ops.translate(x, params.shift),
        "cutout": lambda x: ops.cutout(x, params.cutout, params.cutout_size),
        "all": lambda x: augment.apply(x, params),
    }
    x = images(n=2, side=5).double().requires_grad_(True)
    assert torch.autograd.gradcheck(calls[op], (x,))


# ------------------------------------------------------------------ hand-computed results


def test_translate_by_hand():
    x = torch.arange(1.0, 10.0).view(1, 1, 3, 3)  # [[1,2,3],[4,5,6],[7,8,9]]
    down_left = ops.translate(x, torch.tensor([[1, -1]]))  # one row down, one column left
    assert down_left.squeeze().tolist() == [[0, 0, 0], [2, 3, 0], [5, 6, 0]]


def test_cutout_and_flip_by_hand():
    x = torch.ones(1, 1, 4, 4)
    holed = ops.cutout(x, torch.tensor([[1, 2]]), 2)
    assert holed.squeeze().tolist() == [[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]]
    edge = ops.cutout(x, torch.tensor([[-1, 3]]), 2)  # clipped at the border
    assert edge.squeeze().tolist() == [[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1]]
    row = torch.tensor([[[[1.0, 2.0, 3.0]]], [[[1.0, 2.0, 3.0]]]])
    assert ops.xflip(row, torch.tensor([True, False])).flatten(1).tolist() == [[3, 2, 1], [1, 2, 3]]


def test_color_by_hand():
    # one 2-channel 1x2 image: channel 0 = [0, 0.5], channel 1 = [0.5, -0.5]
    x = torch.tensor([[[[0.0, 0.5]], [[0.5, -0.5]]]])
    assert ops.brightness(x, torch.tensor([0.25])).flatten().tolist() == [0.25, 0.75, 0.75, -0.25]
    # channel means per pixel: [0.25, 0.0]; factor 2 doubles the distance to them
    assert ops.saturation(x, torch.tensor([2.0])).flatten().tolist() == [-0.25, 1.0, 0.75, -1.0]
    # image mean 0.125; factor 0.5 halves the distance to it
    assert ops.contrast(x, torch.tensor([0.5])).flatten().tolist() == [0.0625, 0.3125, 0.3125, -0.1875]


def loop_reference(x: torch.Tensor, p: ops.AugmentParams) -> torch.Tensor:
    """The same transform written pixel by pixel, the obvious slow way."""
    n, c, h, w = x.shape
    out = torch.zeros_like(x)
    for i in range(n):
        img = x[i].flip(2) if p.flip[i] else x[i].clone()
        img = img + p.brightness[i]
        img = (img - img.mean(0, keepdim=True)) * p.saturation[i] + img.mean(0, keepdim=True)
        img = (img - img.mean()) * p.contrast[i] + img.mean()
        dy, dx = int(p.shift[i, 0]), int(p.shift[i, 1])
        top, left = int(p.cutout[i, 0]), int(p.cutout[i, 1])
        for r in range(h):
            for col in range(w):
                sr, sc = r - dy, col - dx
                in_hole = top <= r < top + p.cutout_size and left <= col < left + p.cutout_size
                if 0 <= sr < h and 0 <= sc < w and not in_hole:
                    out[i, :, r, col] = img[:, sr, sc]
    return out


def test_fixed_seed_gives_the_same_parameters_and_the_hand_computed_transform():
    a, b = drawn(n=6, seed=7), drawn(n=6, seed=7)
    for field in ("flip", "brightness", "saturation", "contrast", "shift", "cutout"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert a.cutout_size == 4  # DiffAugment: half the side of an 8 px image
    assert a.shift.abs().max() <= 1  # 8 px * 1/8
    x = images(n=6)
    assert torch.allclose(augment.apply(x, a), loop_reference(x, a), atol=1e-6)
    assert not torch.equal(drawn(n=6, seed=8).brightness, a.brightness)


# ------------------------------------------------------------------ the trainer's use


class RecordingCritic(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.inputs = []

    def forward(self, x, labels=None):
        self.inputs.append(x.detach().clone())
        return (x * self.scale).flatten(1).mean(1)


class StubBackend(Backend):
    """A Backend whose G returns fixed images and whose D records what it sees."""

    def __init__(self, fake_images) -> None:
        self.critic = RecordingCritic()
        self.generator = lambda latent, labels: fake_images
        self.discriminator = self.critic

    @property
    def discriminator_module(self):
        return self.critic

    def loss_scale(self):
        return None

    def update(self, name, loss, first=True, last=True):
        return {}


def stub_backend(fake_images):
    return StubBackend(fake_images)


def test_d_step_augments_real_and_fake_independently():
    cfg = load_config(None, ["augment.policy=diffaugment", "model.latent_dim=4", "data.resolution=28"])
    x = images(n=4, c=1, side=28)
    backend = stub_backend(x.clone())  # fakes identical to the reals
    torch.manual_seed(3)
    step.d_step(backend, cfg, Batch(x, None))
    seen = backend.discriminator_module.inputs[0]
    seen_real, seen_fake = seen.chunk(2)
    assert not torch.equal(seen_real, x) and not torch.equal(seen_fake, x)  # both augmented
    assert (seen_real != seen_fake).flatten(1).any(1).all()  # with different parameters, sample by sample


def test_g_step_shows_d_augmented_fakes():
    cfg = load_config(None, ["augment.policy=diffaugment", "model.latent_dim=4", "data.resolution=28"])
    fakes = images(n=4, c=1, side=28).requires_grad_(True)
    backend = stub_backend(fakes)
    step.g_step(backend, cfg, 4, "cpu")
    (seen,) = backend.discriminator_module.inputs
    assert seen.shape == fakes.shape and not torch.equal(seen, fakes.detach())


@pytest.mark.parametrize(
    "override, key",
    [
        ("augment.policy=flip", "augment.policy"),
        ("augment.ops=[color,blur]", "augment.ops[1]"),
        ("augment.target=1.5", "augment.target"),
        ("augment.translation=0.9", "augment.translation"),
        ("augment.interval=0", "augment.interval"),
        ("augment.speed_images=0", "augment.speed_images"),
    ],
)
def test_bad_augment_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match="^" + re.escape(key) + ": "):
        load_config(None, [override])


def test_augmenting_toy_points_is_refused():
    with pytest.raises(ConfigError, match=r"^augment.policy: .*toy"):
        load_config("configs/toy_ring.yaml", ["augment.policy=diffaugment"])


def test_each_micro_batch_sees_its_own_rows_of_the_batch_augmentation():
    """train.grad_accum splits one batch-level draw: micro-batch i gets rows i*m..(i+1)*m of it, so
    D sees exactly what it sees without accumulation."""
    x, latent = images(n=4, c=1, side=28), torch.arange(4.0)[:, None].repeat(1, 4)

    def generator(z, labels):  # fakes that depend on their latents only
        return (z[:, :1, None, None] / 4).expand(-1, 1, 28, 28)

    seen = {}
    for accum in (1, 2):
        cfg = load_config(
            None,
            [
                "augment.policy=diffaugment",
                "model.latent_dim=4",
                "data.resolution=28",
                f"train.grad_accum={accum}",
            ],
        )
        params = tuple(
            augment.draw(cfg.augment, 4, 28, 1.0, "cpu", torch.Generator().manual_seed(s)) for s in (1, 2)
        )
        backend = stub_backend(None)
        backend.generator = generator
        step.d_step(backend, cfg, Batch(x, None), latent=latent, augment_params=params)
        halves = [inputs.chunk(2) for inputs in backend.discriminator_module.inputs]
        seen[accum] = [torch.cat([h[k] for h in halves]) for k in (0, 1)]  # (reals, fakes) in batch order
    assert len(halves) == 2
    for whole, split in zip(seen[1], seen[2], strict=True):
        assert torch.equal(whole, split)
