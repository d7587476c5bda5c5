"""`python -m distgan.sample` on StyleGAN2: truncation in W, style-mixing grids, walks in W.

The generators are tiny untrained stylegan2s of configs/stylegan2_mnist.yaml written as export folders
(config.yaml + generator.safetensors) with a random average w, so truncation has somewhere to go.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from distgan.checkpoint import save_weights
from distgan.config import load_config
from distgan.generation import load_generator
from distgan.models import build_generator
from distgan.sample import main
from distgan.sampling import (
    SEED_STRIDE,
    generate,
    interpolation_latents,
    style_mix_grid,
    w_interpolation_latents,
)
from tests.launching import REPO

TINY = [
    "model.channel_base=64",
    "model.channel_max=8",
    "model.w_dim=8",
    "model.latent_dim=8",
    "model.mapping_layers=1",
]
pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: extra threads only spin


def exported(tmp_path, name, *overrides):
    folder = tmp_path / name
    folder.mkdir()
    cfg = load_config(REPO / "configs" / "stylegan2_mnist.yaml", [*TINY, *overrides])
    torch.manual_seed(0)
    generator = build_generator(cfg.model, cfg.sample_shape)
    with torch.no_grad():
        generator.mapping.w_avg.normal_()  # as if tracked in training (a fresh one is all zeros)
        for block in generator.synthesis.blocks:  # noise visible in the pixels
            for conv in (block.conv0, block.conv1):
                if conv is not None:
                    conv.noise_strength.fill_(0.1)
    save_weights(generator, folder / "generator.safetensors")
    cfg.save_yaml(folder / "config.yaml")
    return folder


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    return exported(tmp_path_factory.mktemp("sg2"), "plain")


@pytest.fixture(scope="module")
def cond(tmp_path_factory):
    return exported(
        tmp_path_factory.mktemp("sg2"),
        "cond",
        "model.num_classes=10",
        "model.conditioning=projection",
        "data.label_column=label",
    )


def sample(folder, out, *args):
    return main(["--checkpoint", str(folder), "--out", str(out), *args])


def to_u8(x):
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def test_truncation_pulls_ws_toward_the_tracked_average(plain, cond, tmp_path):
    g = load_generator(plain)
    z = g.latent(4, 7)
    average = g.mapping.w_avg.expand(4, g.num_ws, -1)
    with torch.no_grad():
        assert torch.equal(
            generate(g, z, None, 500, psi=0.0), g(average)
        )  # every latent: the average's image
        assert torch.equal(generate(g, z, None, 500, psi=1.0), g(z))  # psi 1: the plain samples
        half = torch.lerp(average, g.w_latents(z), 0.5)
        assert torch.equal(generate(g, z, None, 500, psi=0.5), g(half))
        assert not torch.equal(g(half), g(z)) and not torch.equal(g(half), g(average))

    c = load_generator(cond)  # one average over all classes (the official code): psi 0 ignores the label
    labels = torch.tensor([0, 3, 9, 9])
    with torch.no_grad():
        zero = generate(c, z, labels, 500, psi=0.0)
        assert torch.equal(zero, c(c.mapping.w_avg.expand(4, c.num_ws, -1)))
        assert not torch.equal(generate(c, z, labels, 500, psi=0.5), generate(c, z, labels.flip(0), 500, 0.5))

    assert sample(cond, tmp_path / "t.npz", "--num", "4", "--truncation", "0", "--seed", "1") == 0
    arrays = np.load(tmp_path / "t.npz")
    assert arrays["labels"].tolist() == [0, 1, 2, 3]
    assert all(np.array_equal(arrays["images"][0], image) for image in arrays["images"])


def test_style_mix_grid_cells_mix_coarse_column_and_fine_row_styles(plain):
    g = load_generator(plain)
    rows, cols, coarse = 2, 3, 3
    grid = style_mix_grid(g, rows, cols, seed=5, coarse=coarse, psi=1.0, batch=500)
    assert grid.shape == ((rows + 1) * (cols + 1), 1, 32, 32)
    with torch.no_grad():
        ws = g.w_latents(g.latent(cols + rows, 5 * SEED_STRIDE))  # columns first, then rows
        sources = g(ws)
        mixed = [torch.cat([ws[c, :coarse], ws[cols + r, coarse:]]) for r in range(rows) for c in range(cols)]
        cells = g(torch.stack(mixed))
    table = grid.reshape(rows + 1, cols + 1, 1, 32, 32)
    assert (table[0, 0] == -1).all()  # the blank corner
    assert torch.equal(table[0, 1:], sources[:cols])  # the column sources along the top
    assert torch.equal(table[1:, 0], sources[cols:])  # the row sources down the left
    assert torch.equal(table[1:, 1:].flatten(0, 1), cells)
    assert not torch.equal(cells[0], sources[0]) and not torch.equal(cells[0], sources[cols])


def test_style_mix_command_draws_the_figure_and_refuses_what_it_cannot_draw(plain, tmp_path, capsys):
    assert sample(plain, tmp_path / "mix.png", "--style-mix", "2", "3", "--coarse-ws", "2") == 0
    assert Image.open(tmp_path / "mix.png").size == (4 * 34 + 2, 3 * 34 + 2)  # (1 + 3) x (1 + 2) tiles
    assert "coarse w's 0-1 from the columns" in capsys.readouterr().out

    dcgan = tmp_path / "dcgan"
    dcgan.mkdir()
    cfg = load_config(REPO / "configs" / "quickstart.yaml", ["model.g_width=8", "model.d_width=8"])
    save_weights(build_generator(cfg.model, cfg.sample_shape), dcgan / "generator.safetensors")
    cfg.save_yaml(dcgan / "config.yaml")
    for folder, args, message in [
        (dcgan, ["--style-mix", "2", "2"], "--style-mix needs a generator with a W space"),
        (dcgan, ["--num", "2", "--interpolate", "3", "--interpolate-in", "w"], "--interpolate-in w needs"),
        (plain, ["--style-mix", "2", "2", "--coarse-ws", "8"], "--coarse-ws must be in [1, 7]"),
        (plain, ["--style-mix", "0", "2"], "--style-mix ROWS COLS must both be >= 1"),
        (plain, ["--style-mix", "2", "2", "--num", "4"], "drop --num"),
        (plain, ["--style-mix", "2", "2", "--interpolate-in", "w"], "drop --num, --interpolate(-in)"),
        (plain, ["--num", "2", "--coarse-ws", "2"], "add --style-mix"),
        (plain, ["--interpolate-in", "w", "--num", "2"], "add --interpolate K"),
        (plain, [], "--num N is required"),
    ]:
        assert sample(folder, tmp_path / "x.png", *args) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (args, err)
    assert sample(plain, tmp_path / "x.npz", "--style-mix", "2", "2") == 2
    assert "--out must end in .png" in capsys.readouterr().err


def test_walks_in_w_are_straight_lines_between_the_ends_ws(plain, tmp_path):
    g = load_generator(plain)
    rows, steps, seed = 2, 4, 3
    walk = w_interpolation_latents(g, rows, steps, seed, None, 500)
    with torch.no_grad():
        ends = g.w_latents(g.latent(2 * rows, seed))  # the same ends as the walk in z
    walk = walk.reshape(rows, steps, g.num_ws, -1)
    assert torch.equal(walk[:, 0], ends[:rows]) and torch.equal(walk[:, -1], ends[rows:])
    torch.testing.assert_close(walk[:, 1], ends[:rows] + (ends[rows:] - ends[:rows]) / 3)

    assert sample(plain, tmp_path / "w.npz", "--num", "2", "--interpolate", "4", "--interpolate-in", "w",
                  "--seed", "3") == 0  # fmt: skip
    assert sample(plain, tmp_path / "z.npz", "--num", "2", "--interpolate", "4", "--seed", "3") == 0
    in_w = np.load(tmp_path / "w.npz")["images"].reshape(rows, steps, 32, 32, 1)
    in_z = np.load(tmp_path / "z.npz")["images"].reshape(rows, steps, 32, 32, 1)
    with torch.no_grad():
        images = to_u8(g(g.latent(2 * rows, seed)))
        in_z_middle = to_u8(g(interpolation_latents(g, rows, steps, seed))).reshape(rows, steps, 32, 32, 1)
    assert np.array_equal(in_w[:, 0], images[:rows]) and np.array_equal(in_w[:, -1], images[rows:])
    assert np.array_equal(in_w[:, 0], in_z[:, 0]) and np.array_equal(in_z, in_z_middle)
    assert not np.array_equal(in_w[:, 1], in_z[:, 1])  # the middle of the walk: a line in W, not slerp in z
