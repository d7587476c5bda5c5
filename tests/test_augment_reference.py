"""Augmentation against its references, not against itself.

Parameters: DiffAugment (Zhao et al. 2020) draws brightness ~ U(-0.5, 0.5), saturation ~ U(0, 2),
contrast ~ U(0.5, 1.5), an integer shift within 1/8 of the side, a cutout of half the side centred
anywhere in [0, side]; ADA (Karras et al. 2020) applies each op with probability p, the x-flip a
fair coin on top. Frequencies are checked with tolerances of 5 binomial standard deviations
(a false alarm about once in 3 million runs per check; seeds are fixed anyway).

Effects: a marked pixel on a blank image, moved where the drawn parameters say it goes.
"""

from __future__ import annotations

import math

import torch

from distgan import augment
from distgan.augment import ops
from distgan.config import load_config

N, SIDE = 20_000, 32
ALL_OPS = "augment.ops=[xflip,translation,color,cutout]"
DIFFAUGMENT = load_config(None, ["augment.policy=diffaugment", ALL_OPS]).augment
ADA = load_config(None, ["augment.policy=ada", ALL_OPS]).augment


def params(cfg=DIFFAUGMENT, p=1.0, n=N, side=SIDE, seed=0):
    return augment.draw(cfg, n, side, p, "cpu", torch.Generator().manual_seed(seed))


def assert_frequency(hits: torch.Tensor, expected: float, what: str) -> None:
    """The share of True in `hits` is `expected` within 5 binomial standard deviations."""
    n = hits.numel()
    tolerance = 5 * math.sqrt(expected * (1 - expected) / n) + 1e-12
    share = hits.float().mean().item()
    assert abs(share - expected) <= tolerance, (
        f"{what}: {share:.4f}, expected {expected:.4f} +- {tolerance:.4f}"
    )


def assert_uniform(values: torch.Tensor, low: float, high: float, what: str, bins: int = 10) -> None:
    """Inside [low, high), reaching both ends, and each of `bins` equal bins holds 1/bins of the mass."""
    assert values.min() >= low and values.max() < high, what
    width = high - low
    assert values.min() < low + 0.01 * width and values.max() > high - 0.01 * width, f"{what} spans the range"
    index = ((values - low) / width * bins).long().clamp(0, bins - 1)
    for b in range(bins):
        assert_frequency(index == b, 1 / bins, f"{what} bin {b}")


def assert_uniform_integers(values: torch.Tensor, low: int, high: int, what: str) -> None:
    """Every integer of [low, high] with the same frequency, and nothing else."""
    assert set(values.unique().tolist()) == set(range(low, high + 1)), what
    for v in range(low, high + 1):
        assert_frequency(values == v, 1 / (high - low + 1), f"{what} = {v}")


# ------------------------------------------------------------------ parameter distributions


def test_diffaugment_colour_parameters_are_the_papers_uniforms():
    drawn = params()
    assert_uniform(drawn.brightness, -0.5, 0.5, "brightness")
    assert_uniform(drawn.saturation, 0.0, 2.0, "saturation")
    assert_uniform(drawn.contrast, 0.5, 1.5, "contrast")
    # three independent draws, not one value reused
    pairs = torch.stack([drawn.brightness + 0.5, drawn.saturation / 2, drawn.contrast - 0.5])
    assert torch.corrcoef(pairs).sub(torch.eye(3)).abs().max() < 5 / math.sqrt(N)


def test_diffaugment_translation_is_uniform_within_an_eighth_of_the_side():
    drawn = params()
    reach = SIDE // 8
    for axis, name in enumerate(("rows", "columns")):
        assert_uniform_integers(drawn.shift[:, axis], -reach, reach, f"shift {name}")
    assert torch.corrcoef(drawn.shift.T.float())[0, 1].abs() < 5 / math.sqrt(N)  # rows, columns independent


def test_diffaugment_cutout_is_half_the_side_centred_anywhere_in_the_image():
    drawn = params()
    assert drawn.cutout_size == SIDE // 2
    centre = drawn.cutout + drawn.cutout_size // 2
    for axis in (0, 1):
        assert_uniform_integers(centre[:, axis], 0, SIDE, f"cutout centre axis {axis}")
    odd = params(side=SIDE - 1)  # an odd side: the square is round(31 / 2) = 16 wide
    assert odd.cutout_size == round((SIDE - 1) / 2 + 1e-9)


def test_xflip_is_a_fair_coin_whatever_p_is():
    assert_frequency(params().flip, 0.5, "DiffAugment x-flip")  # p = 1: still a coin, not always mirrored
    assert_frequency(params(ADA, p=0.4).flip, 0.5 * 0.4, "ADA x-flip at p=0.4")


def test_ada_turns_each_op_on_with_probability_p_independently():
    p = 0.3
    drawn = params(ADA, p=p)
    colour = drawn.brightness != 0
    cut = drawn.cutout[:, 0] != -drawn.cutout_size
    moved = (drawn.shift != 0).any(1)
    assert_frequency(colour, p, "colour on")
    assert torch.equal(colour, drawn.saturation != 1) and torch.equal(colour, drawn.contrast != 1)
    assert_frequency(cut, p, "cutout on")
    reach = SIDE // 8
    assert_frequency(moved, p * (1 - 1 / (2 * reach + 1) ** 2), "translation on (a drawn 0 shift looks off)")
    assert_frequency(colour & cut, p * p, "colour and cutout on together (independent coins)")
    assert_frequency(colour & moved, p * p * (1 - 1 / (2 * reach + 1) ** 2), "colour and translation on")
    # each op's own parameters, where it is on, are still the paper's
    assert_uniform(drawn.brightness[colour], -0.5, 0.5, "brightness where on")


def test_ops_outside_the_list_never_act_and_p_zero_is_the_identity():
    only_colour = load_config(None, ["augment.policy=ada", "augment.ops=[color]"]).augment
    drawn = params(only_colour, p=1.0, n=2_000)
    assert not drawn.flip.any() and not drawn.shift.any()
    assert (drawn.cutout == -drawn.cutout_size).all()
    assert (drawn.brightness != 0).all()
    idle = params(ADA, p=0.0, n=2_000)
    x = torch.rand(2_000, 3, 8, 8)
    assert not idle.flip.any() and not idle.shift.any() and (idle.brightness == 0).all()
    small = params(ADA, p=0.0, n=2_000, side=8)
    assert torch.allclose(augment.apply(x, small), x, atol=1e-6)  # colour at identity: rounding only


def test_pipe_probability_follows_the_policy():
    for policy, p in (("diffaugment", 1.0), ("ada", 0.0)):
        cfg = load_config(None, [f"augment.policy={policy}", ALL_OPS]).augment
        assert augment.AugmentPipe(cfg, SIDE, 64, "cpu").p == p
    ada = load_config(None, ["augment.policy=ada", "augment.p_start=0.25", ALL_OPS]).augment
    assert augment.AugmentPipe(ada, SIDE, 64, "cpu").p == 0.25
    assert augment.AugmentPipe(load_config(None, []).augment, SIDE, 64, "cpu").draw(4, "cpu") is None
    torch.manual_seed(0)
    drawn = augment.AugmentPipe(DIFFAUGMENT, SIDE, 64, "cpu").draw(4_000, "cpu")
    assert (drawn.brightness != 0).all() and (drawn.cutout[:, 0] != -drawn.cutout_size).all()


# ------------------------------------------------------------------ effects on a known image


def marked(n, side=SIDE, at=(5, 9), channels=3):
    """Blank images (0) with one marked pixel of value 1 at `at` in every channel."""
    x = torch.zeros(n, channels, side, side)
    x[:, :, at[0], at[1]] = 1.0
    return x


def where_marked(x: torch.Tensor) -> list[tuple[int, int] | None]:
    out = []
    for image in x[:, 0]:
        spots = (image == 1.0).nonzero().tolist()
        assert len(spots) <= 1
        out.append(tuple(spots[0]) if spots else None)
    return out


def test_flip_mirrors_the_marked_column_of_flipped_images_only():
    drawn = params(n=64)
    out = ops.xflip(marked(64), drawn.flip)
    for flipped, spot in zip(drawn.flip.tolist(), where_marked(out), strict=True):
        assert spot == ((5, SIDE - 1 - 9) if flipped else (5, 9))
    assert 0 < drawn.flip.sum() < 64


def test_translation_moves_the_marked_pixel_by_the_drawn_shift():
    drawn = params(n=200)
    at = (0, SIDE - 1)  # the top-right corner: half the shifts push it out; a clamped gather would smear it
    out = ops.translate(marked(200, at=at), drawn.shift)
    left = 0
    for i, ((dy, dx), spot) in enumerate(zip(drawn.shift.tolist(), where_marked(out), strict=True)):
        target = (at[0] + dy, at[1] + dx)
        if 0 <= target[0] < SIDE and 0 <= target[1] < SIDE:
            assert spot == target
        else:
            assert spot is None  # shifted out: gone, not wrapped round or clamped to the border
            left += 1
        assert out[i].abs().sum() <= 3  # nothing else appears: the padding is 0
    assert left > 0


def test_cutout_zeroes_the_square_centred_where_drawn():
    drawn = params(n=200)
    size = drawn.cutout_size
    out = ops.cutout(torch.ones(200, 3, SIDE, SIDE), drawn.cutout, size)
    grid = torch.arange(SIDE)
    for image, (cy, cx) in zip(out, (drawn.cutout + size // 2).tolist(), strict=True):
        # DiffAugment: rows cy - size/2 .. cy + size/2 - 1 (even size), clipped to the image
        rows = (grid >= cy - size // 2) & (grid < cy - size // 2 + size)
        cols = (grid >= cx - size // 2) & (grid < cx - size // 2 + size)
        expected = ~(rows[:, None] & cols[None, :])
        assert torch.equal(image == 1, expected.expand(3, SIDE, SIDE))


def test_colour_ops_on_known_images():
    drawn = params(n=16)
    grey = torch.full((16, 3, 4, 4), 0.25)
    grey[:, :, 0, 0] = -0.75  # one dark pixel: image mean 0.1875, each pixel grey (channels equal)
    bright = ops.brightness(grey, drawn.brightness)
    assert torch.allclose(bright - grey, drawn.brightness.view(-1, 1, 1, 1).expand_as(grey))
    assert torch.equal(ops.saturation(grey, drawn.saturation), grey)  # grey pixels have no colour to scale
    contrasted = ops.contrast(grey, drawn.contrast)
    mean = 0.25 - 1.0 / 16
    assert torch.allclose(contrasted[:, :, 1, 1], mean + (0.25 - mean) * drawn.contrast[:, None], atol=1e-6)
    assert torch.allclose(contrasted[:, :, 0, 0], mean + (-0.75 - mean) * drawn.contrast[:, None], atol=1e-6)
    red = torch.zeros(16, 3, 2, 2)
    red[:, 0] = 0.9  # channel mean 0.3: saturation scales the distance to it
    saturated = ops.saturation(red, drawn.saturation)
    assert torch.allclose(saturated[:, 0, 0, 0], 0.3 + 0.6 * drawn.saturation, atol=1e-6)
    assert torch.allclose(saturated[:, 1, 0, 0], 0.3 - 0.3 * drawn.saturation, atol=1e-6)


def test_full_pipeline_shifts_in_zeros_after_the_colour_change():
    """Colour first, translation after: pixels shifted in from outside are exactly 0 whatever the
    brightness (DiffAugment's order); the marked pixel lands flipped, then shifted."""
    drawn = params(n=200)
    x = marked(200)
    out = augment.apply(x, drawn)
    for i, ((dy, dx), flipped) in enumerate(zip(drawn.shift.tolist(), drawn.flip.tolist(), strict=True)):
        if dy > 0:
            assert (out[i, :, :dy] == 0).all(), i  # rows shifted in from above
        if dx < 0:
            assert (out[i, :, :, SIDE + dx :] == 0).all(), i
        col = SIDE - 1 - 9 if flipped else 9
        y, xx = 5 + dy, col + dx
        top, left = drawn.cutout[i].tolist()
        hidden = top <= y < top + drawn.cutout_size and left <= xx < left + drawn.cutout_size
        if not hidden:
            b, s, c = drawn.brightness[i], drawn.saturation[i], drawn.contrast[i]
            value = 1 + b  # saturation: grey pixel, unchanged; contrast around the image mean
            mean = b + 1 / SIDE**2
            assert torch.allclose(out[i, :, y, xx], mean + (value - mean) * c, atol=1e-5), (i, s)
