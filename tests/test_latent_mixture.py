"""The mixture latent (model.latent_components): uniform components, separated inputs, fixed centres, checks."""

import pytest
import torch

from distgan.checkpoint import load_weights, resolve_checkpoint
from distgan.config import ConfigError, load_config, override
from distgan.models import build_generator
from distgan.models.latent_mixture import MixtureLatent
from distgan.trainer import train

TOY = ["model.g_width=8", "model.d_width=8", "data.batch_size=16", "data.toy_samples=64"]


def components_of(mixture: MixtureLatent, inputs: torch.Tensor) -> torch.Tensor:
    """The component each generator input came from: its nearest centre (tested to be its own below)."""
    return torch.cdist(inputs, mixture.centres).argmin(dim=1)


def test_every_component_gets_an_equal_share_and_inputs_sit_at_their_own_centre():
    mixture = MixtureLatent(latent_dim=16, components=20, component_std=0.2)
    latent = torch.randn(40_000, 16, generator=torch.Generator().manual_seed(0))
    inputs = mixture(latent)
    expected = (torch.special.ndtr(latent[:, 0]) * 20).long()  # the documented rule k = floor(Phi(z_0) K)
    assert torch.equal(components_of(mixture, inputs), expected)
    shares = torch.bincount(expected, minlength=20) / len(latent)
    assert shares.min() > 0.045 and shares.max() < 0.055  # 1/20 each (binomial std 0.0011)
    offsets = (inputs - mixture.centres[expected]) / 0.2
    assert torch.allclose(offsets[:, 1:], latent[:, 1:], atol=1e-5)
    # each component is N(centre, std^2 I): the first offset coordinate too, whatever the component
    for k in (0, 7, 19):
        first = offsets[expected == k, 0]
        assert abs(first.mean()) < 0.15 and abs(first.std() - 1) < 0.1, (k, first.mean(), first.std())
    quantiles = torch.quantile(offsets[:, 0], torch.tensor([0.1587, 0.5, 0.8413]))
    assert torch.allclose(quantiles, torch.tensor([-1.0, 0.0, 1.0]), atol=0.03)


def test_truncation_shrinks_toward_each_components_centre_and_keeps_the_balance():
    mixture = MixtureLatent(latent_dim=8, components=10, component_std=0.5)
    latent = torch.randn(20_000, 8, generator=torch.Generator().manual_seed(1))
    component, offset = mixture.split(latent)
    assert torch.allclose(mixture.join(component, offset), latent, atol=1e-4)  # join undoes split
    half = mixture.truncate(latent, 0.5)
    half_component, half_offset = mixture.split(half)
    assert torch.equal(half_component, component)  # plain latent * psi would crowd the middle components
    assert torch.allclose(half_offset, 0.5 * offset, atol=1e-4)
    assert torch.allclose(mixture(half), mixture.centres[component] + 0.25 * offset, atol=1e-4)


def test_the_centres_are_the_same_in_every_build_and_travel_with_the_checkpoint(tmp_path, fresh_accelerate):
    mix = ["model.latent_dim=4", "model.latent_components=6", "model.latent_component_std=0.3"]
    cfg = load_config(
        "configs/toy_ring.yaml",
        [
            *TOY,
            *mix,
            f"train.out_dir={tmp_path}",
            "train.steps=2",
            "log.sample_every=0",
            "checkpoint.every=0",
        ],
    )
    first, second = build_generator(cfg.model, cfg.sample_shape), build_generator(cfg.model, cfg.sample_shape)
    assert torch.equal(first.mixture.centres, second.mixture.centres)  # every process builds the same
    assert first.mixture.centres.shape == (6, 4)
    assert train(cfg, resume="never") == 0
    loaded = build_generator(cfg.model, cfg.sample_shape)
    loaded.mixture.centres.zero_()
    load_weights(loaded, resolve_checkpoint(tmp_path) / "generator.safetensors")  # strict: key present
    assert torch.equal(loaded.mixture.centres, first.mixture.centres)
    plain_cfg = load_config("configs/toy_ring.yaml", [*TOY, "model.latent_components=0"])
    plain = build_generator(plain_cfg.model, plain_cfg.sample_shape)
    assert plain.mixture is None and not any("mixture" in k for k in plain.state_dict())


def test_bad_mixture_settings_name_the_key():
    cfg = load_config("configs/toy_ring.yaml", TOY)
    with pytest.raises(ConfigError, match="model.latent_components"):
        override(cfg, ["model.latent_components=-1"])
    with pytest.raises(ConfigError, match="model.latent_component_std"):
        override(cfg, ["model.latent_components=4", "model.latent_component_std=0"])
    with pytest.raises(ConfigError, match="model.latent_components.*arch"):
        load_config("configs/celeba_resnet.yaml", ["model.latent_components=4"])


def test_dcgan_generator_draws_from_the_mixture_latent():
    """G's network sees the mixture's image of the latent, not the latent itself."""
    cfg = load_config(
        "configs/mnist_uncond.yaml", ["model.latent_components=3", "model.latent_component_std=0.5"]
    )
    generator = build_generator(cfg.model, cfg.sample_shape).eval()
    latent = generator.latent(16, seed=0)
    with torch.no_grad():
        images = generator(latent)
        mixed = generator.mixture(latent)
        generator.mixture = None  # the bare network, fed the mixture's output by hand
        assert torch.equal(images, generator(mixed))
        assert not torch.allclose(images, generator(latent))


def test_sampling_truncates_a_mixture_generator_inside_its_components():
    from distgan.sampling import truncate

    cfg = load_config("configs/toy_ring.yaml", [*TOY, "model.latent_dim=4", "model.latent_components=5"])
    generator = build_generator(cfg.model, cfg.sample_shape)
    latent = generator.latent(1000, seed=0)
    components, _ = generator.mixture.split(truncate(generator, latent, 0.3))
    assert torch.equal(components, generator.mixture.split(latent)[0])
