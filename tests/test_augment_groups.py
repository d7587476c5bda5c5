"""ADA's groups (Karras et al. 2020, appendix B): blit, geom, color_matrix, filter, noise.

Against references, not against themselves: exact identity at p = 0, exact pixel copies for the
integer ops, a marked pixel turned to where a quarter turn puts it, a disc scaled to the expected
area, the paper's parameter distributions (tolerances of 5 standard errors of the sample size),
parameters reproduced from a seed and through the pipe's checkpoint state, and gradients reaching
the images (what the penalty differentiates through D(T(x))).
"""

from __future__ import annotations

import math
import re
from dataclasses import fields, is_dataclass, replace

import pytest
import torch

from distgan import augment
from distgan.augment import color_matrix, filtering, geometric, pipeline
from distgan.config import ConfigError, load_config
from distgan.config.diff import config_changes

SIDE = 32
BGCFNC = load_config(None, ["augment.policy=ada", "augment.pipe=bgcfnc"]).augment


def drawn(cfg=BGCFNC, p=1.0, n=8, side=SIDE, seed=0):
    return augment.draw(cfg, n, side, p, "cpu", torch.Generator().manual_seed(seed))


def images(n=8, c=3, side=SIDE, seed=1):
    return torch.rand(n, c, side, side, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def geometry(n=1, **values) -> geometric.GeometryParams:
    """Identity geometry for n samples, with the given ops set (python numbers or tensors)."""
    base = {
        "flip": torch.zeros(n, dtype=torch.bool),
        "quarter_turns": torch.zeros(n, dtype=torch.long),
        "shift": torch.zeros(n, 2),
        "scale": torch.ones(n),
        "rotate_pre": torch.zeros(n),
        "aniso": torch.ones(n),
        "rotate_post": torch.zeros(n),
        "fraction_shift": torch.zeros(n, 2),
    }
    for name, value in values.items():
        base[name] = torch.as_tensor(value).expand_as(base[name]).to(base[name].dtype)
    return geometric.GeometryParams(**base)


def colour(n=1, **values) -> color_matrix.ColorParams:
    base = {
        "brightness": torch.zeros(n),
        "contrast": torch.ones(n),
        "luma_flip": torch.zeros(n, dtype=torch.bool),
        "hue": torch.zeros(n),
        "saturation": torch.ones(n),
    }
    for name, value in values.items():
        base[name] = torch.as_tensor(value).expand_as(base[name]).to(base[name].dtype)
    return color_matrix.ColorParams(**base)


def tensors(value, prefix=""):
    """{dotted name: tensor} of an AugmentParams, nested groups included."""
    out = {}
    for f in fields(value):
        item = getattr(value, f.name)
        if isinstance(item, torch.Tensor):
            out[prefix + f.name] = item
        elif is_dataclass(item):
            out.update(tensors(item, prefix + f.name + "."))
    return out


def assert_mean_std(values: torch.Tensor, mean: float, std: float, what: str) -> None:
    """Sample mean and std of `values` are (mean, std) within 5 standard errors."""
    n = values.numel()
    got_mean, got_std = values.mean().item(), values.std().item()
    assert abs(got_mean - mean) <= 5 * std / math.sqrt(n), f"{what}: mean {got_mean:.4f}, expected {mean:.4f}"
    assert abs(got_std - std) <= 5 * std / math.sqrt(2 * n), f"{what}: std {got_std:.4f}, expected {std:.4f}"


def assert_frequency(hits: torch.Tensor, expected: float, what: str) -> None:
    n = hits.numel()
    share = hits.float().mean().item()
    assert abs(share - expected) <= 5 * math.sqrt(expected * (1 - expected) / n) + 1e-12, (
        f"{what}: {share:.4f}, expected {expected:.4f}"
    )


# ------------------------------------------------------------------ identity and exactness


@pytest.mark.parametrize("channels", [1, 3])
def test_every_group_is_exactly_the_identity_at_p_zero(channels):
    params, x = drawn(p=0.0), images(c=channels)
    x[..., :3] = 0.0  # exact zeros beside other values: any weight leaking from a neighbour shows
    assert torch.equal(geometric.transform(x, params.geometry), x)
    assert torch.equal(color_matrix.transform(x, params.color), x)
    assert torch.equal(filtering.filter_bands(x, params.filter), x)
    assert torch.equal(filtering.add_noise(x, params.noise), x)
    assert torch.equal(augment.apply(x, params), x)
    on = drawn(p=1.0)  # the same ops at p = 1 do change every image
    assert (augment.apply(x, on) != x).flatten(1).any(1).all()


def test_integer_geometry_is_an_exact_pixel_copy():
    """blit alone (flips, quarter turns, integer shifts): every output pixel IS an input pixel of
    the same image and channel; without a shift, the image's pixels exactly permuted."""
    cfg = load_config(None, ["augment.policy=ada", "augment.ops=[blit]"]).augment
    params, x = drawn(cfg, n=24), images(n=24)
    g = params.geometry
    assert (g.quarter_turns != 0).any() and (g.shift != 0).any() and g.flip.any()
    out = geometric.transform(x, g)
    for i in range(24):
        for ch in range(3):
            assert torch.isin(out[i, ch], x[i, ch]).all(), (i, ch)
        if not g.shift[i].any():
            assert torch.equal(out[i].flatten().sort().values, x[i].flatten().sort().values), i
    # with geom configured too: the samples whose geom ops happen to be off are still exact copies
    mixed = drawn(load_config(None, ["augment.policy=ada", "augment.pipe=bgc"]).augment, p=0.5, n=24).geometry
    integer = (mixed.scale == 1) & (mixed.aniso == 1) & (mixed.rotate_pre == 0) & (mixed.rotate_post == 0)
    integer &= (mixed.fraction_shift == 0).all(1)
    assert 0 < integer.sum() < 24
    out = geometric.transform(x, mixed)
    for i in integer.nonzero().flatten().tolist():
        assert torch.isin(out[i, 0], x[i, 0]).all(), i


def test_quarter_turns_move_a_marked_pixel_counter_clockwise():
    x = torch.zeros(4, 1, SIDE, SIDE)
    x[:, :, 5, 9] = 1.0
    out = geometric.transform(x, geometry(4, quarter_turns=torch.arange(4)))
    last = SIDE - 1
    # counter-clockwise as shown: (row, col) -> (last - col, row); the top-right corner goes top-left
    expected = [(5, 9), (last - 9, 5), (last - 5, last - 9), (9, last - 5)]
    for k in range(4):
        assert (out[k, 0] == 1).nonzero().tolist() == [list(expected[k])], k
        assert torch.equal(out[k], torch.rot90(x[k], k, dims=(1, 2)))
    # the arbitrary rotation agrees with the quarter turn at 90 degrees (up to interpolation rounding)
    turned = geometric.transform(x[:1], geometry(rotate_pre=math.pi / 2))
    assert torch.allclose(turned, out[1:2], atol=1e-4)


def disc(radius: float, side: int = 64) -> torch.Tensor:
    centre = (side - 1) / 2
    grid = torch.arange(side, dtype=torch.float32) - centre
    inside = grid[:, None] ** 2 + grid[None, :] ** 2 <= radius**2
    return torch.where(inside, 1.0, -1.0).view(1, 1, side, side)


@pytest.mark.parametrize("scale", [1.5, 0.6])
def test_isotropic_scale_of_a_centred_disc_gives_the_scaled_disc(scale):
    """Area of {out > 0} within 4 % of pi (s r)^2, and the disc stays centred."""
    out = geometric.transform(disc(10.0), geometry(scale=scale))[0, 0]
    area = (out > 0).sum().item()
    assert abs(area - math.pi * (10 * scale) ** 2) <= 0.04 * math.pi * (10 * scale) ** 2, area
    assert torch.equal(out, out.flip(0)) or torch.allclose(out, out.flip(0), atol=1e-5)  # still centred
    # anisotropic scaling keeps the area and stretches x by a, y by 1/a
    stretched = geometric.transform(disc(10.0), geometry(aniso=1.5))[0, 0] > 0
    assert abs(stretched.sum().item() - math.pi * 100) <= 0.04 * math.pi * 100
    assert stretched.any(0).sum() > stretched.any(1).sum()  # wider (columns) than tall (rows)


def test_resampling_reflects_at_the_borders():
    """Outside the image is read as its mirror image about the border pixels: a shift right by one
    column shows column 1 in column 0, and a shrunk constant image stays constant (no black rim)."""
    x = images(n=1)
    moved = geometric.transform(x, geometry(shift=torch.tensor([1.0, 0.0])))
    assert torch.equal(moved[..., 1:], x[..., :-1])
    assert torch.equal(moved[..., 0], x[..., 1])
    flat = torch.full((1, 3, SIDE, SIDE), 0.7)
    shrunk = geometric.transform(
        flat, geometry(scale=0.5, rotate_pre=0.3, fraction_shift=torch.tensor([3.2, -1.7]))
    )
    assert torch.allclose(shrunk, flat, atol=1e-6)


# ------------------------------------------------------------------ gradients (the penalty sees D(T(x)))


def test_gradient_through_a_pure_flip_is_the_flipped_weight():
    x = images(n=2).requires_grad_(True)
    w = images(n=2, seed=5)
    out = geometric.transform(x, geometry(2, flip=torch.tensor([True, False])))
    (grad,) = torch.autograd.grad((out * w).sum(), x)
    assert torch.equal(grad[0], w[0].flip(2)) and torch.equal(grad[1], w[1])


@pytest.mark.parametrize("channels", [1, 3])
def test_every_group_passes_its_gradient_to_the_images(channels):
    """Every group is affine in the images, T(x) = A x + t, so the gradient g of sum(T(x) * w) must
    satisfy sum((T(x) - T(0)) * w) = sum(x * g): the adjoint of what the forward pass did."""
    params = drawn(n=2, side=8, seed=3)
    calls = {
        "geometry": lambda x: geometric.transform(x, params.geometry),
        "color": lambda x: color_matrix.transform(x, params.color),
        "filter": lambda x: filtering.filter_bands(x, params.filter),
        "noise": lambda x: filtering.add_noise(x, params.noise),
        "all": lambda x: augment.apply(x, params),
    }
    x = images(n=2, c=channels, side=8).double().requires_grad_(True)
    w = images(n=2, c=channels, side=8, seed=4).double()
    for name, call in calls.items():
        (grad,) = torch.autograd.grad((call(x) * w).sum(), x)
        assert grad.abs().sum() > 0, name
        moved = ((call(x) - call(torch.zeros_like(x))) * w).sum()
        assert torch.allclose(moved, (x * grad).sum(), rtol=1e-9, atol=1e-9), name


# ------------------------------------------------------------------ colour


def test_luma_flip_maps_grey_g_to_minus_g_and_hue_saturation_keep_grey():
    """Convention: colour ops act around 0 (mid-grey of [-1, 1] images)."""
    grey1 = images(n=2, c=1)
    grey3 = grey1.expand(-1, 3, -1, -1)
    flipped = colour(2, luma_flip=True)
    assert torch.equal(color_matrix.transform(grey1, flipped), -grey1)
    assert torch.allclose(color_matrix.transform(grey3, flipped), -grey3, atol=1e-6)
    tinted = colour(2, hue=torch.tensor([1.0, -2.5]), saturation=torch.tensor([3.0, 0.2]))
    assert torch.equal(color_matrix.transform(grey1, tinted), grey1)
    assert torch.allclose(color_matrix.transform(grey3, tinted), grey3, atol=1e-6)
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 0.6
    # a third of a turn about the luma axis carries red to green (counter-clockwise seen from +v)
    assert torch.allclose(color_matrix.transform(red, colour(hue=2 * math.pi / 3)), red.roll(1, 1), atol=1e-6)
    # brightness then contrast: c (g + b); saturation 0 leaves each pixel's channel mean
    assert torch.allclose(
        color_matrix.transform(grey1, colour(2, brightness=0.25, contrast=2.0)), 2 * (grey1 + 0.25)
    )
    assert torch.allclose(
        color_matrix.transform(red, colour(saturation=0.0)), torch.full_like(red, 0.2), atol=1e-6
    )


# ------------------------------------------------------------------ filtering and noise


def test_filter_amplifies_each_band_by_its_normalised_gain():
    bands = filtering.band_filters()
    impulse = torch.zeros(bands.shape[1], dtype=bands.dtype)
    impulse[filtering.HALF_TAPS] = 1.0
    assert torch.allclose(bands.sum(0), impulse)
    gains = torch.tensor([[1.0, 1.0, 1.0, 4.0], [3.0, 3.0, 3.0, 3.0]])
    normalised = filtering.normalised_gains(gains)
    assert torch.allclose(normalised[1], torch.ones(4))  # equal gains: the identity
    assert torch.allclose(
        (normalised.square() * torch.tensor(filtering.EXPECTED_POWER)).sum(1), torch.ones(2)
    )
    grid = torch.arange(SIDE)
    checker = ((-1.0) ** (grid[:, None] + grid[None, :])).expand(
        2, 1, SIDE, SIDE
    )  # frequency pi: the top band
    flat = torch.full((2, 1, SIDE, SIDE), 0.5)  # frequency 0: the bottom band
    params = filtering.FilterParams(gains)
    top, bottom = normalised[:, 3] ** 2, normalised[:, 0] ** 2  # rows, then columns: the gain twice
    assert torch.allclose(filtering.filter_bands(checker, params), checker * top.view(-1, 1, 1, 1), rtol=1e-3)
    assert torch.allclose(filtering.filter_bands(flat, params), flat * bottom.view(-1, 1, 1, 1), atol=1e-5)


def test_noise_adds_sigma_times_the_drawn_field():
    params, x = drawn(n=4), images(n=4, c=1)
    out = filtering.add_noise(x, params.noise)
    expected = x + params.noise.std.view(-1, 1, 1, 1) * params.noise.noise[:, :1]
    assert torch.equal(out, expected)


# ------------------------------------------------------------------ the paper's distributions


def test_parameters_follow_the_papers_distributions():
    n, side = 20_000, 8
    d = drawn(n=n, side=side, p=1.0)
    g, c = d.geometry, d.color
    ln2 = math.log(2)
    assert_mean_std(c.brightness, 0.0, 0.2, "brightness")
    assert_mean_std(c.contrast.log(), 0.0, 0.5 * ln2, "log contrast")
    assert_mean_std(c.saturation.log(), 0.0, ln2, "log saturation")
    assert_mean_std(c.hue, 0.0, math.pi / math.sqrt(3), "hue")  # U(-pi, pi)
    assert c.hue.abs().max() <= math.pi and c.hue.abs().max() > 0.99 * math.pi
    assert_frequency(c.luma_flip, 0.5, "luma flip")
    assert_mean_std(g.scale.log(), 0.0, 0.2 * ln2, "log scale")
    assert_mean_std(g.aniso.log(), 0.0, 0.2 * ln2, "log anisotropic scale")
    assert_mean_std(g.fraction_shift / side, 0.0, 0.125, "fractional translation / side")
    assert_mean_std(g.rotate_pre, 0.0, math.pi / math.sqrt(3), "rotation")
    assert_frequency(g.flip, 0.5, "x-flip")
    for k in range(4):
        assert_frequency(g.quarter_turns == k, 0.25, f"{k} quarter turns")
    assert set(g.shift.unique().tolist()) == {-1.0, 0.0, 1.0}  # round(U(-1/8, 1/8) x 8)
    assert_frequency(g.shift == 0, 0.5, "integer shift rounded to 0")
    assert_mean_std(d.filter.gains.log(), 0.0, ln2, "log filter gain")
    sigma = 0.1
    assert_mean_std(
        d.noise.std, sigma * math.sqrt(2 / math.pi), sigma * math.sqrt(1 - 2 / math.pi), "noise sigma"
    )
    assert_mean_std(d.noise.noise, 0.0, 1.0, "noise field")


def test_each_op_is_on_with_p_and_each_rotation_with_one_minus_sqrt_one_minus_p():
    n, p = 20_000, 0.3
    d = drawn(n=n, side=8, p=p)
    g, c = d.geometry, d.color
    rotation = 1 - math.sqrt(1 - p)
    assert_frequency(g.rotate_pre != 0, rotation, "rotation before")
    assert_frequency(g.rotate_post != 0, rotation, "rotation after")
    assert_frequency((g.rotate_pre != 0) | (g.rotate_post != 0), p, "some rotation")
    for name, on in {
        "scale": g.scale != 1,
        "aniso": g.aniso != 1,
        "fractional translation": (g.fraction_shift != 0).any(1),
        "brightness": c.brightness != 0,
        "contrast": c.contrast != 1,
        "hue": c.hue != 0,
        "saturation": c.saturation != 1,
        "noise": d.noise.std != 0,
        "a filter band": d.filter.gains[:, 1] != 1,
    }.items():
        assert_frequency(on, p, name)
    assert_frequency(c.luma_flip, p / 2, "luma flip (a fair coin when on)")
    assert_frequency(g.quarter_turns != 0, p * 3 / 4, "quarter turns (0 is one of 4 values)")
    assert_frequency((c.brightness != 0) & (g.scale != 1), p * p, "independent coins")


# ------------------------------------------------------------------ reproducible and resume-exact


def test_parameters_reproduce_from_a_seed_and_through_the_pipes_checkpoint_state():
    cfg = load_config(None, ["augment.policy=ada", "augment.pipe=bgcfnc", "augment.p_start=0.1"]).augment
    pipe = augment.AugmentPipe(cfg, SIDE, 16, "cpu")
    pipe.p = 0.4375  # moved by ADA since the start
    resumed = augment.AugmentPipe(cfg, SIDE, 16, "cpu")
    resumed.load_state_dict(pipe.state_dict())
    torch.manual_seed(11)
    first = tensors(pipe.draw(16, "cpu"))
    torch.manual_seed(11)
    again = tensors(resumed.draw(16, "cpu"))
    assert first.keys() == again.keys() and "geometry.rotate_pre" in first and "noise.noise" in first
    for name in first:
        assert torch.equal(first[name], again[name]), name
    torch.manual_seed(12)
    assert not torch.equal(tensors(pipe.draw(16, "cpu"))["color.hue"], first["color.hue"])
    # a micro-batch's rows of the parameters are those samples' parameters, groups included
    part = tensors(pipe.draw(16, "cpu").select(slice(4, 8)))
    assert all(t.shape[0] == 4 for t in part.values())


def test_pipe_params_select_rows_of_every_group():
    params = drawn(n=6)
    rows = params.select(slice(2, 4))
    assert torch.equal(rows.geometry.scale, params.geometry.scale[2:4])
    assert torch.equal(rows.noise.noise, params.noise.noise[2:4])
    assert torch.equal(augment.apply(images(n=6)[2:4], rows), augment.apply(images(n=6), params)[2:4])


# ------------------------------------------------------------------ config


def test_pipe_names_the_groups_and_refuses_an_ops_list_beside_it():
    assert load_config(None, ["augment.pipe=bgc"]).augment.active_ops == ("blit", "geom", "color_matrix")
    assert BGCFNC.active_ops[-3:] == ("filter", "noise", "cutout")
    assert load_config(None, []).augment.active_ops == ("translation", "color", "cutout")
    assert load_config(None, ["augment.ops=[xflip]"]).augment.active_ops == ("xflip",)
    with pytest.raises(ConfigError, match="^" + re.escape("augment.pipe: ") + ".*not both"):
        load_config(None, ["augment.pipe=bgc", "augment.ops=[xflip]"])
    with pytest.raises(ConfigError, match=r"^augment.ops: blit already mirrors"):
        load_config(None, ["augment.ops=[xflip,blit]"])
    with pytest.raises(ConfigError, match=r"^augment.pipe: "):
        load_config(None, ["augment.pipe=bgcf"])


def test_an_older_runs_default_ops_list_is_the_same_config():
    """config.yaml of runs made when augment.ops defaulted to the list resumes without a change."""
    now = load_config(None, ["augment.policy=diffaugment"])
    saved = {"augment": {"policy": "diffaugment", "ops": ["translation", "color", "cutout"]}}
    assert config_changes(saved, {"augment": {"policy": "diffaugment", "ops": now.augment.ops}}) == []
    other = {"augment": {"policy": "diffaugment", "ops": ["translation", "color"]}}
    assert config_changes(other, {"augment": {"ops": None}}) == [
        ("augment.ops", ["translation", "color"], None)
    ]


def test_a_drawn_geometry_composes_its_ops_in_the_papers_order():
    """scale 2 then a shift of 3 pixels: the centre pixel's content lands 3 pixels right, spread
    over 2x2 pixels; the other order would put it 6 pixels right."""
    x = torch.zeros(1, 1, SIDE, SIDE)
    x[..., 15:17, 15:17] = 1.0  # a 2x2 block at the centre (15.5, 15.5)
    params = replace(geometry(scale=2.0), fraction_shift=torch.tensor([[3.0, 0.0]]))
    out = geometric.transform(x, params)[0, 0]
    columns = (out > 0.5).any(0).nonzero().flatten()
    assert columns.float().mean().item() == pytest.approx(15.5 + 3.0, abs=0.01)
    assert pipeline.rotation_probability(0.0) == 0.0 and pipeline.rotation_probability(1.0) == 1.0
