"""StyleGAN2's networks: shapes, the paper's mechanisms one by one, and the official parameter counts."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from distgan.config.sections import ConfigError, ModelConfig
from distgan.models.stylegan2 import (
    StyleGAN2Discriminator,
    StyleGAN2Generator,
    build_stylegan2_discriminator,
    build_stylegan2_generator,
)
from distgan.models.stylegan2_layers import (
    MAPPING_LR_MULTIPLIER,
    EqualizedConv2d,
    EqualizedLinear,
    MinibatchStd,
    downsample_2x,
    fir_kernel,
    modulated_conv2d,
    upsample_2x,
)

TINY = dict(w_dim=32, mapping_layers=2, channel_base=256, channel_max=32)  # 32, 32, 16, 8 maps at 4..32 px


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_generator(resolution=32, channels=3, num_classes=0, **options):
    torch.manual_seed(0)
    return StyleGAN2Generator(32, (channels, resolution, resolution), num_classes, **{**TINY, **options})


def tiny_discriminator(resolution=32, channels=3, num_classes=0, **options):
    torch.manual_seed(1)
    kwargs = dict(channel_base=256, channel_max=32, mbstd_group=4, **options)
    return StyleGAN2Discriminator((channels, resolution, resolution), num_classes, **kwargs)


def set_noise_strength(generator, value: float) -> None:
    for name, parameter in generator.named_parameters():
        if name.endswith("noise_strength"):
            parameter.data.fill_(value)


@pytest.mark.parametrize("resolution", [32, 64])
def test_shapes(resolution):
    generator, critic = tiny_generator(resolution), tiny_discriminator(resolution)
    images = generator(torch.randn(4, 32))
    assert images.shape == (4, 3, resolution, resolution)
    assert generator.num_ws == 2 * int(math.log2(resolution)) - 2  # 2 per resolution, 1 at 4x4, 1 toRGB
    assert critic(images).shape == (4,)
    assert generator.sample(3).shape == (3, 3, resolution, resolution)


def test_a_forward_on_the_meta_device_gives_shapes_only():  # how the memory estimate sizes a run
    with torch.device("meta"):
        generator, critic = tiny_generator(num_classes=10), tiny_discriminator(num_classes=10)
        labels = torch.zeros(8, dtype=torch.long)
        images = generator(torch.empty(8, 32), labels)
        assert images.shape == (8, 3, 32, 32) and critic(images, labels).shape == (8,)


def test_a_resolution_stylegan2_does_not_make_is_refused():
    with pytest.raises(ValueError, match=r"makes \[32, 64, 128, 256, 512, 1024\] px images, not 48"):
        tiny_generator(48)


def test_demodulation_gives_unit_std_per_sample_and_output_channel():
    torch.manual_seed(0)
    x = torch.randn(4, 32, 50, 50)
    weight = 3 * torch.randn(8, 32, 3, 3)
    styles = torch.exp(1.5 * torch.randn(4, 32))  # scales far apart: demodulation must undo each
    out = modulated_conv2d(x, weight, styles)[:, :, 1:-1, 1:-1]  # inside: every output sees 9 inputs
    std = out.flatten(2).std(dim=2)
    assert torch.allclose(std, torch.ones(4, 8), atol=0.15), std


def test_modulation_scales_each_input_channel_per_sample():
    torch.manual_seed(0)
    x, weight = torch.randn(2, 4, 8, 8), torch.randn(3, 4, 3, 3)
    styles = torch.rand(2, 4) + 0.5
    out = modulated_conv2d(x, weight, styles, demodulate=False)
    expected = torch.stack(
        [F.conv2d(x[n : n + 1], weight * styles[n, None, :, None, None], padding=1)[0] for n in range(2)]
    )
    torch.testing.assert_close(out, expected)


def test_equalized_lr_scales_weights_at_run_time_by_one_over_sqrt_fan_in():
    torch.manual_seed(0)
    conv = EqualizedConv2d(8, 4, 3, leaky=False)
    x = torch.randn(2, 8, 6, 6)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight / math.sqrt(8 * 9), conv.bias, padding=1))
    mapping_layer = EqualizedLinear(16, 5, lr_multiplier=MAPPING_LR_MULTIPLIER)
    z = torch.randn(3, 16)
    lr = MAPPING_LR_MULTIPLIER
    expected = z @ (mapping_layer.weight * lr / math.sqrt(16)).T + mapping_layer.bias * lr
    torch.testing.assert_close(mapping_layer(z), expected)
    # stored N(0, 1/lr^2): the effective weights start N(0, 1/fan_in) whatever the multiplier
    assert 50 < mapping_layer.weight.std() < 200


def test_the_mapping_network_learns_at_one_hundredth_of_the_rate():
    generator = tiny_generator()
    assert all(
        layer.weight_gain == 0.01 / math.sqrt(layer.weight.shape[1]) for layer in generator.mapping.layers
    )


def test_minibatch_std_appends_the_std_over_each_group():
    torch.manual_seed(0)
    x = torch.randn(8, 3, 4, 4)
    out = MinibatchStd(group_size=4)(x)
    assert out.shape == (8, 4, 4, 4)
    torch.testing.assert_close(out[:, :3], x)
    for n in range(8):
        group = x[[m for m in range(8) if m % 2 == n % 2]]  # groups interleave: n mod (N / G)
        expected = group.std(dim=0, unbiased=False).mean()
        torch.testing.assert_close(out[n, 3], torch.full((4, 4), expected.item()), atol=1e-5, rtol=1e-5)


def test_minibatch_std_refuses_a_batch_its_group_does_not_divide():
    with pytest.raises(ValueError, match="model.mbstd_group"):
        MinibatchStd(group_size=4)(torch.randn(6, 3, 4, 4))


def test_fir_resampling_keeps_a_constant_image_constant():
    image = torch.full((1, 2, 8, 8), 0.7)
    identity = torch.zeros(2, 2, 3, 3)
    identity[[0, 1], [0, 1], 1, 1] = 1.0  # the transposed conv alone only spreads pixels apart
    up = modulated_conv2d(image, identity, torch.ones(1, 2), demodulate=False, up=True, fir=fir_kernel())
    assert up.shape == (1, 2, 16, 16)
    torch.testing.assert_close(up[..., 2:-2, 2:-2], torch.full((1, 2, 12, 12), 0.7))
    assert upsample_2x(image, fir_kernel()).shape == (1, 2, 16, 16)
    assert downsample_2x(image, fir_kernel()).shape == (1, 2, 4, 4)
    torch.testing.assert_close(
        upsample_2x(image, fir_kernel())[..., 2:-2, 2:-2], torch.full((1, 2, 12, 12), 0.7)
    )
    torch.testing.assert_close(
        downsample_2x(image, fir_kernel())[..., 1:-1, 1:-1], torch.full((1, 2, 2, 2), 0.7)
    )


def test_zero_noise_strength_makes_g_deterministic_given_w():
    generator = tiny_generator().train()
    ws = torch.randn(2, generator.num_ws, 32)
    set_noise_strength(generator, 1.0)
    assert not torch.equal(generator(ws), generator(ws))  # fresh noise every call
    set_noise_strength(generator, 0.0)
    assert torch.equal(generator(ws), generator(ws))


def test_eval_mode_uses_the_fixed_noise_maps():
    generator = tiny_generator()
    set_noise_strength(generator, 1.0)
    generator.eval()
    z = torch.randn(2, 32)
    assert torch.equal(generator(z), generator(z))


def test_w_avg_tracks_the_mapped_w_in_training_only():
    generator = tiny_generator(w_avg_beta=0.9)
    z = torch.randn(4, 32)
    generator.eval()(z)
    assert torch.equal(generator.mapping.w_avg, torch.zeros(32))
    generator.train()(z)
    w = generator.mapping(z)
    torch.testing.assert_close(generator.mapping.w_avg, 0.1 * w.mean(dim=0))


def test_truncation_in_w_psi_0_gives_the_average_w_image_and_psi_1_changes_nothing():
    generator = tiny_generator().eval()
    generator.mapping.w_avg.copy_(torch.randn(32))
    z = torch.randn(3, 32)
    assert generator.truncate(z, 1.0) is z
    average = generator(generator.mapping.w_avg.expand(1, generator.num_ws, 32))
    truncated = generator(generator.truncate(z, 0.0))
    torch.testing.assert_close(truncated, average.expand(3, -1, -1, -1))
    half = generator.truncate(z, 0.5)
    torch.testing.assert_close(half[:, 0], (generator.mapping(z) + generator.mapping.w_avg) / 2)


def test_style_mixing_with_probability_0_equals_no_mixing():
    generator = tiny_generator(style_mixing=0.0).train()
    set_noise_strength(generator, 1.0)  # so that a different noise draw would show
    z = torch.randn(4, 32)
    torch.manual_seed(5)
    mixed = generator(z)
    ws = generator.mapping(z)[:, None].repeat(1, generator.num_ws, 1)
    torch.manual_seed(5)
    assert torch.equal(mixed, generator(ws))


def test_style_mixing_with_probability_1_takes_the_later_ws_from_a_second_latent():
    generator = tiny_generator(style_mixing=1.0).train()
    z = torch.randn(4, 32)
    w = generator.mapping(z)
    for seed in range(5):
        torch.manual_seed(seed)
        ws = generator.w_latents(z)
        same = [torch.equal(ws[:, i], w) for i in range(generator.num_ws)]
        cutoff = same.index(False)
        assert cutoff >= 1 and not any(same[cutoff:])  # a prefix from z, the rest from another latent
        assert all(torch.equal(ws[:, i], ws[:, cutoff]) for i in range(cutoff, generator.num_ws))
    assert torch.equal(generator.eval().w_latents(z)[:, -1], w)  # never when sampling


def test_the_label_changes_w_through_the_mapping_network():
    generator = tiny_generator(num_classes=10).eval()  # no style mixing
    z = torch.randn(2, 32).repeat(2, 1)
    ws = generator.w_latents(z, torch.tensor([0, 0, 3, 3]))
    torch.testing.assert_close(ws[:2], generator.w_latents(z[:2], torch.tensor([0, 0])))
    assert not torch.allclose(ws[:2], ws[2:])
    with pytest.raises(ValueError, match="class-conditional"):
        generator(z)


def test_a_conditional_critic_depends_on_the_label():
    critic = tiny_discriminator(num_classes=10)
    images = torch.randn(4, 3, 32, 32)
    assert not torch.allclose(
        critic(images, torch.tensor([0, 1, 2, 3])), critic(images, torch.tensor([4, 5, 6, 7]))
    )


@pytest.mark.parametrize("num_classes", [0, 10])
def test_gradients_reach_every_weight_and_r1_double_backward_works(num_classes):
    generator = tiny_generator(num_classes=num_classes).train()
    critic = tiny_discriminator(num_classes=num_classes)
    labels = torch.arange(4) % 10 if num_classes else None
    set_noise_strength(generator, 0.1)
    critic(generator(torch.randn(4, 32), labels), labels).mean().backward()
    for name, parameter in [*generator.named_parameters(), *critic.named_parameters()]:
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    critic.zero_grad()
    real = torch.randn(4, 3, 32, 32, requires_grad=True)
    (grad,) = torch.autograd.grad(critic(real, labels).sum(), real, create_graph=True)
    grad.square().sum().backward()  # the R1 penalty's second derivative
    assert critic.blocks[0].conv0.weight.grad.abs().sum() > 0


def test_the_path_length_gradient_reaches_the_ws_and_the_mapping_network():
    generator = tiny_generator().train()
    images, ws = generator(torch.randn(4, 32), return_ws=True)
    (grad,) = torch.autograd.grad((images * torch.randn_like(images)).sum(), ws, create_graph=True)
    assert grad.shape == (4, generator.num_ws, 32) and grad.abs().sum() > 0
    grad.square().sum().backward()
    assert generator.mapping.layers[0].weight.grad.abs().sum() > 0


def test_the_residual_critic_has_skips_and_the_plain_one_has_none():
    assert tiny_discriminator().blocks[0].skip is not None
    assert all(block.skip is None for block in tiny_discriminator(residual=False).blocks)


def test_conv_clamp_bounds_the_conv_outputs():
    torch.manual_seed(0)
    x = 10 * torch.randn(2, 4, 8, 8)
    assert EqualizedConv2d(4, 4, 3, conv_clamp=0.5)(x).abs().max() <= 0.5
    assert EqualizedConv2d(4, 4, 3)(x).abs().max() > 0.5


def test_reduced_precision_covers_only_the_top_resolutions_under_autocast():
    z = torch.randn(4, 32)
    images = torch.randn(4, 3, 32, 32)
    full_g, full_d = (
        tiny_generator(reduced_precision_res=0).eval(),
        tiny_discriminator(reduced_precision_res=0),
    )
    half_g, half_d = (
        tiny_generator(reduced_precision_res=2).eval(),
        tiny_discriminator(reduced_precision_res=2),
    )
    reference_g, reference_d = full_g(z), full_d(images)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(full_g(z), reference_g) and torch.equal(full_d(images), reference_d)
        reduced_g, reduced_d = half_g(z), half_d(images)
    assert reduced_g.dtype == torch.float32 and reduced_d.dtype == torch.float32
    assert not torch.equal(reduced_g, reference_g) and not torch.equal(reduced_d, reference_d)
    torch.testing.assert_close(reduced_g, reference_g, atol=0.1, rtol=0.05)
    torch.testing.assert_close(reduced_d, reference_d, atol=0.1, rtol=0.05)


# Parameter counts of the official configurations, summed layer by layer from the official channel
# formula channels(r) = min(channel_base // r, channel_max), independently of the modules above.
def official_generator_count(z_dim, c_dim, w_dim, mapping_layers, resolution, channel_base, image_channels=3):
    def ch(r):
        return min(channel_base // r, 512)

    def styled(cin, cout, k):  # affine w -> cin (+bias), weight, bias, noise strength
        return w_dim * cin + cin + cout * cin * k * k + cout + 1

    def to_rgb(cin):  # affine, 1x1 weight, bias; no noise
        return w_dim * cin + cin + image_channels * cin + image_channels

    embed = c_dim * w_dim + w_dim if c_dim else 0
    first_in = z_dim + (w_dim if c_dim else 0)
    mapping = embed + (first_in * w_dim + w_dim) + (mapping_layers - 1) * (w_dim * w_dim + w_dim)
    synthesis = ch(4) * 4 * 4 + styled(ch(4), ch(4), 3) + to_rgb(ch(4))
    r = 8
    while r <= resolution:
        synthesis += styled(ch(r // 2), ch(r), 3) + styled(ch(r), ch(r), 3) + to_rgb(ch(r))
        r *= 2
    return mapping + synthesis


def official_discriminator_count(c_dim, resolution, channel_base, residual, image_channels=3):
    def ch(r):
        return min(channel_base // r, 512)

    total = image_channels * ch(resolution) + ch(resolution)  # fromRGB
    r = resolution
    while r >= 8:
        tmp, out = ch(r), ch(r // 2)
        total += tmp * tmp * 9 + tmp + out * tmp * 9 + out + (out * tmp if residual else 0)
        r //= 2
    c4, cmap = ch(4), (ch(4) if c_dim else 0)
    total += (c4 + 1) * c4 * 9 + c4 + c4 * 16 * c4 + c4 + c4 * (cmap or 1) + (cmap or 1)
    if c_dim:  # the label mapping: embedding, then 8 dense layers (the official default depth)
        total += c_dim * cmap + cmap + 8 * (cmap * cmap + cmap)
    return total


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_match_the_official_paper256_and_cifar_configs():
    # paper256: fmaps 0.5 -> channel_base 16384, map 8, unconditional FFHQ 256 px, residual D
    # cifar: fmaps 1 -> channel_base 32768, map 2, 10 classes, plain D (architecture 'orig')
    with torch.device("meta"):
        paper256_g = StyleGAN2Generator(512, (3, 256, 256), 0, mapping_layers=8, channel_base=16384)
        paper256_d = StyleGAN2Discriminator((3, 256, 256), 0, channel_base=16384, mbstd_group=8)
        cifar_g = StyleGAN2Generator(512, (3, 32, 32), 10, mapping_layers=2, channel_base=32768)
        cifar_d = StyleGAN2Discriminator((3, 32, 32), 10, channel_base=32768, mbstd_group=32, residual=False)
    assert count(paper256_g) == official_generator_count(512, 0, 512, 8, 256, 16384)
    assert count(paper256_d) == official_discriminator_count(0, 256, 16384, residual=True)
    assert count(cifar_g) == official_generator_count(512, 10, 512, 2, 32, 32768)
    assert count(cifar_d) == official_discriminator_count(10, 32, 32768, residual=False)


def stylegan2_config(**changes) -> ModelConfig:
    base = dict(arch="stylegan2", channels=3, latent_dim=32, **TINY)
    return ModelConfig(**{**base, **changes})


def test_the_builders_read_the_model_section():
    cfg = stylegan2_config(num_classes=10, conditioning="projection", mbstd_group=2, d_residual=False)
    cfg.validate()
    generator = build_stylegan2_generator(cfg, (3, 32, 32))
    critic = build_stylegan2_discriminator(cfg, (3, 32, 32))
    labels = torch.tensor([1, 2])
    assert critic(generator(torch.randn(2, 32), labels), labels).shape == (2,)
    assert critic.epilogue.mbstd.group_size == 2 and critic.blocks[0].skip is None
    assert generator.mapping.w_avg.shape == (32,) and len(generator.mapping.layers) == 2


@pytest.mark.parametrize(
    "changes, key",
    [
        (dict(style_mixing=1.5), "model.style_mixing"),
        (dict(w_avg_beta=1.0), "model.w_avg_beta"),
        (dict(mapping_layers=0), "model.mapping_layers"),
        (dict(conv_clamp=-1.0), "model.conv_clamp"),
        (dict(mbstd_group=0), "model.mbstd_group"),
        (dict(num_classes=10), "model.conditioning"),
        (dict(spectral_norm="d"), "model.spectral_norm"),
        (
            dict(arch="dcgan", channel_base=512, w_dim=512, mapping_layers=8, channel_max=512),
            "model.channel_base",
        ),
    ],
)
def test_bad_stylegan2_options_name_their_key(changes, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        stylegan2_config(**changes).validate()


@pytest.mark.parametrize(
    "resolution, micro_batch, key",
    [(48, 8, "data.resolution"), (2048, 8, "data.resolution"), (32, 6, "model.mbstd_group")],
)
def test_a_run_stylegan2_cannot_do_names_its_key(resolution, micro_batch, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        stylegan2_config(mbstd_group=4).check_stylegan2_run(resolution, micro_batch)


def test_batches_smaller_than_the_group_and_every_side_from_32_to_1024_are_fine():
    for resolution in (32, 64, 128, 256, 512, 1024):
        stylegan2_config(mbstd_group=4).check_stylegan2_run(resolution, 8)
    stylegan2_config(mbstd_group=32).check_stylegan2_run(32, 2)  # one group of 2


def test_the_experiment_checks_the_side_and_the_micro_batch_before_anything_runs():
    from distgan.config.sections import DataConfig, ExperimentConfig, TrainConfig

    model = stylegan2_config(channels=1, mbstd_group=4)
    train = dataclasses.replace(TrainConfig(), grad_accum=2)
    ExperimentConfig(model=model, data=DataConfig(resolution=32, batch_size=16), train=train).validate()
    with pytest.raises(ConfigError, match="model.mbstd_group: .* 6 images D sees at once"):
        ExperimentConfig(model=model, data=DataConfig(resolution=32, batch_size=12), train=train).validate()
    with pytest.raises(ConfigError, match="data.resolution"):
        ExperimentConfig(model=model, data=DataConfig(resolution=48, batch_size=16)).validate()
