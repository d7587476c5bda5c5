"""The SN-ResNet's blocks against hand-written forwards on fixed weights, and spectral norm's sigma.

The references below spell the papers' wiring with elementary tensor ops (batch statistics, 2x
nearest upsampling by repetition, 2x2 average pooling by reshaping, attention by einsum); only
the convolution itself is torch's. Shapes alone would pass any wiring of the right modules.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from distgan.models.resnet_blocks import (
    ConditionalBatchNorm2d,
    DiscriminatorBlock,
    GeneratorBlock,
    SelfAttention,
)
from distgan.models.spectral import apply_spectral_norm

torch.set_default_dtype(torch.float32)


def randomize(module: nn.Module, seed: int) -> nn.Module:
    """Every parameter drawn afresh (gains and biases included): no value happens to be neutral."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return module


def batch_norm(x, gain=None, bias=None, eps=1e-5):
    """Training-mode BatchNorm: each channel by its batch mean and biased variance."""
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = ((x - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
    out = (x - mean) / torch.sqrt(var + eps)
    if gain is not None:
        out = out * gain[:, :, None, None] + bias[:, :, None, None]
    return out


def up2(x):
    return x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)


def pool2(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).mean(dim=(3, 5))


def conv(layer: nn.Conv2d, x):
    return F.conv2d(x, layer.weight, layer.bias, padding=layer.padding)


def inputs(n=6, c=4, side=8, seed=1):
    return torch.randn(n, c, side, side, generator=torch.Generator().manual_seed(seed))


def test_conditional_batchnorm_at_init_is_plain_normalisation_for_every_class():
    norm = ConditionalBatchNorm2d(4, num_classes=5)
    x, labels = inputs() * 3 + 1, torch.tensor([0, 1, 2, 3, 4, 4])
    assert torch.allclose(norm(x, labels), batch_norm(x), atol=1e-5)
    randomize(norm, 2)
    expected = batch_norm(x, norm.gain.weight[labels], norm.bias.weight[labels])
    assert torch.allclose(norm(x, labels), expected, atol=1e-5)  # each sample its own class's gain/bias


def norm(module: ConditionalBatchNorm2d, h, labels):
    """The block's BatchNorm by hand: its class's gain and bias, or the plain affine ones."""
    if labels is not None:
        return batch_norm(h, module.gain.weight[labels], module.bias.weight[labels])
    n = len(h)
    return batch_norm(h, module.norm.weight.expand(n, -1), module.norm.bias.expand(n, -1))


def test_generator_block_matches_the_hand_forward():
    for num_classes in (0, 3):
        block = randomize(GeneratorBlock(4, 6, num_classes), seed=3).train()
        x, labels = inputs(), torch.tensor([0, 1, 2, 0, 1, 2]) if num_classes else None

        h = conv(block.conv1, up2(F.relu(norm(block.norm1, x, labels))))
        h = conv(block.conv2, F.relu(norm(block.norm2, h, labels)))
        expected = h + conv(block.shortcut, up2(x))
        out = block(x, labels)
        assert out.shape == (6, 6, 16, 16)
        assert torch.allclose(out, expected, atol=1e-4), num_classes


def test_discriminator_blocks_match_the_hand_forward():
    x = inputs()
    first = randomize(DiscriminatorBlock(4, 6, downsample=True, first=True), seed=4)
    # the first block: no ReLU on the image, and the shortcut pools before its 1x1 conv
    expected = pool2(conv(first.conv2, F.relu(conv(first.conv1, x)))) + conv(first.shortcut, pool2(x))
    assert torch.allclose(first(x), expected, atol=1e-4)
    down = randomize(DiscriminatorBlock(4, 6, downsample=True), seed=5)
    expected = pool2(conv(down.conv2, F.relu(conv(down.conv1, F.relu(x))))) + pool2(conv(down.shortcut, x))
    assert torch.allclose(down(x), expected, atol=1e-4)
    same = randomize(DiscriminatorBlock(4, 4, downsample=False), seed=6)
    assert same.shortcut is None  # identity shortcut: nothing learned when the shape is kept
    expected = conv(same.conv2, F.relu(conv(same.conv1, F.relu(x)))) + x
    assert torch.allclose(same(x), expected, atol=1e-4)


def test_self_attention_is_the_identity_at_init_and_sagan_after():
    attention = SelfAttention(16)
    x = inputs(n=2, c=16, side=4)
    assert torch.equal(attention(x), x)
    randomize(attention, seed=7)
    n, c, h, w = x.shape
    query = torch.einsum("oc,nchw->nohw", attention.query.weight[:, :, 0, 0], x).flatten(2)
    key = F.max_pool2d(torch.einsum("oc,nchw->nohw", attention.key.weight[:, :, 0, 0], x), 2).flatten(2)
    value = F.max_pool2d(torch.einsum("oc,nchw->nohw", attention.value.weight[:, :, 0, 0], x), 2).flatten(2)
    # every output pixel i: a softmax over the pooled pixels j of query_i . key_j
    weights = torch.softmax(torch.einsum("nki,nkj->nij", query, key), dim=2)
    attended = torch.einsum("nij,nvj->nvi", weights, value).reshape(n, -1, h, w)
    out = torch.einsum("ov,nvhw->nohw", attention.out.weight[:, :, 0, 0], attended)
    assert torch.allclose(attention(x), x + attention.gamma * out, atol=1e-4)


# ------------------------------------------------------------------ spectral norm


def slow_to_converge(rows=12, cols=10, seed=8):
    """A weight whose top two singular values are close (2.0, 1.9): power iteration converges
    slowly, so one iteration and several differ visibly."""
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(rows, rows, generator=g))
    v, _ = torch.linalg.qr(torch.randn(cols, cols, generator=g))
    s = torch.linspace(1.9, 0.2, cols)
    s[0] = 2.0
    return u[:, :cols] @ torch.diag(s) @ v.T


def test_spectral_norm_does_one_power_iteration_per_training_forward():
    model = apply_spectral_norm(nn.Sequential(nn.Linear(10, 12), nn.Conv2d(3, 5, 3)))
    linear, conv2d = model[0], model[1]
    with torch.no_grad():
        linear.parametrizations.weight.original.copy_(slow_to_converge())
    for layer in (linear, conv2d):
        sn = layer.parametrizations.weight[0]
        w = layer.parametrizations.weight.original.detach().flatten(1)
        u, v = sn._u.clone(), sn._v.clone()
        normalised = layer.weight  # a training forward of the parametrization: ONE iteration
        u = F.normalize(w @ v, dim=0)
        v = F.normalize(w.T @ u, dim=0)
        sigma = u @ w @ v
        assert torch.allclose(sn._u, u, atol=1e-6) and torch.allclose(sn._v, v, atol=1e-6)
        assert torch.allclose(normalised.flatten(1), w / sigma, atol=1e-6)


def test_spectral_norm_sigma_estimate_approaches_the_largest_singular_value():
    model = apply_spectral_norm(nn.Sequential(nn.Linear(10, 12)))
    with torch.no_grad():
        model[0].parametrizations.weight.original.copy_(slow_to_converge())
    w = model[0].parametrizations.weight.original.detach()
    true_sigma = torch.linalg.matrix_norm(w, 2).item()
    assert abs(true_sigma - 2.0) < 1e-5

    def estimate():
        sn = model[0].parametrizations.weight[0]
        return (sn._u @ w @ sn._v).item()

    first = estimate()  # after the 15 iterations at registration
    for _ in range(300):
        model[0].weight  # noqa: B018  (each access in training mode iterates once)
    assert estimate() <= true_sigma + 1e-5 and estimate() > first
    assert abs(estimate() - true_sigma) < 1e-3
    assert abs(torch.linalg.matrix_norm(model[0].weight.detach(), 2).item() - 1.0) < 1e-3
    model.eval()
    frozen = estimate()
    model[0].weight  # noqa: B018  (evaluation mode: no iteration)
    assert estimate() == frozen


def test_spectral_norm_targets_convs_linears_and_the_class_projection_only():
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.up = nn.ConvTranspose2d(4, 4, 2)
            self.fc = nn.Linear(4, 1)
            self.projection = nn.Embedding(5, 4)
            self.norm = ConditionalBatchNorm2d(4, 5)
            self.head = nn.Module()  # a class projection inside a sub-module, as in a real D
            self.head.projection = nn.Embedding(5, 4)

    model = apply_spectral_norm(Tiny())
    parametrized = {name for name, m in model.named_modules() if hasattr(m, "parametrizations")}
    assert parametrized == {"conv", "up", "fc", "projection", "head.projection"}
    assert torch.equal(model.norm.gain.weight, torch.ones(5, 4))  # BN gains stay gains
