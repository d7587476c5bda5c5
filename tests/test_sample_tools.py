"""`python -m distgan.sample` tools: --truncation, --interpolate (PNG + GIF), --labels (a row per class).

The generators are tiny untrained DCGANs written as export folders (config.yaml +
generator.safetensors), which `load_generator` reads like any checkpoint: no training needed.
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
from tests.launching import REPO

TINY_G = ["model.g_width=8", "model.d_width=8", "model.latent_dim=16"]


def exported(tmp_path, name, *overrides):
    folder = tmp_path / name
    folder.mkdir()
    cfg = load_config(REPO / "configs" / "quickstart.yaml", [*TINY_G, *overrides])
    torch.manual_seed(0)
    generator = build_generator(cfg.model, cfg.sample_shape)
    with torch.no_grad():  # larger than DCGAN's N(0, 0.02) init, so different latents give different pixels
        for p in generator.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.2)
    save_weights(generator, folder / "generator.safetensors")
    cfg.save_yaml(folder / "config.yaml")
    return folder


@pytest.fixture
def plain(tmp_path):
    return exported(tmp_path, "plain", "model.num_classes=0")  # the quickstart itself is conditional


def images(path):
    return np.load(path)["images"]


def sample(folder, out, *args):
    return main(["--checkpoint", str(folder), "--out", str(out), *args])


def test_truncation_pulls_latents_toward_the_mean(plain, tmp_path, capsys):
    assert sample(plain, tmp_path / "a.npz", "--num", "6", "--seed", "3") == 0
    assert sample(plain, tmp_path / "b.npz", "--num", "6", "--seed", "3", "--truncation", "1") == 0
    assert np.array_equal(images(tmp_path / "a.npz"), images(tmp_path / "b.npz"))  # 1 = off, bit for bit
    assert sample(plain, tmp_path / "half.npz", "--num", "6", "--seed", "3", "--truncation", "0.5") == 0
    g = load_generator(plain)
    with torch.no_grad():
        expected = g(0.5 * g.latent(6, 3 * 100_003))  # the documented seed scheme, scaled by psi
    got = torch.from_numpy(images(tmp_path / "half.npz"))
    assert torch.equal(got, torch.from_numpy((((expected.clamp(-1, 1) + 1) * 127.5).round()).to(torch.uint8)
                                             .permute(0, 2, 3, 1).numpy()))  # fmt: skip
    assert not np.array_equal(images(tmp_path / "half.npz"), images(tmp_path / "a.npz"))
    assert sample(plain, tmp_path / "zero.npz", "--num", "4", "--truncation", "0") == 0
    zero = images(tmp_path / "zero.npz")
    assert all(np.array_equal(zero[0], z) for z in zero)  # psi 0: the mean latent's one sample
    capsys.readouterr()
    assert sample(plain, tmp_path / "x.npz", "--num", "2", "--truncation", "1.5") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--truncation must be in [0, 1]" in err and "1.5" in err


def test_interpolate_writes_a_grid_of_walks_and_a_looping_gif(plain, tmp_path, capsys):
    assert sample(plain, tmp_path / "walk.png", "--num", "3", "--interpolate", "5", "--seed", "1") == 0
    grid = Image.open(tmp_path / "walk.png")
    assert grid.size == (5 * 30 + 2, 3 * 30 + 2)  # 3 walks (rows) x 5 steps (columns) of 28 px + padding
    gif = Image.open(tmp_path / "walk.gif")
    assert gif.format == "GIF" and gif.n_frames == 2 * 5 - 2 and gif.info.get("loop") == 0
    assert "walk.png and" in capsys.readouterr().out

    assert sample(plain, tmp_path / "walk.npz", "--num", "3", "--interpolate", "5", "--seed", "1") == 0
    walks = images(tmp_path / "walk.npz").astype(np.float64).reshape(3, 5, 28, 28, 1)
    g = load_generator(plain)
    ends = g.latent(6, 1)
    with torch.no_grad():
        starts, stops = g(ends[:3]), g(ends[3:])
    to_u8 = lambda x: ((x.clamp(-1, 1) + 1) * 127.5).round().permute(0, 2, 3, 1).numpy()  # noqa: E731
    assert np.array_equal(walks[:, 0], to_u8(starts)) and np.array_equal(walks[:, -1], to_u8(stops))
    step = np.abs(np.diff(walks, axis=1)).mean(axis=(2, 3, 4))  # (3, 4) neighbour differences
    assert (step > 0).all() and (
        step < np.abs(walks[:, -1] - walks[:, 0]).mean(axis=(1, 2, 3))[:, None]
    ).all()

    toy = exported(
        tmp_path, "toy", "data.source=toy", "data.path=ring8", "model.arch=mlp", "model.num_classes=0"
    )
    capsys.readouterr()
    assert sample(toy, tmp_path / "t.png", "--num", "2", "--interpolate", "4") == 2
    assert "--interpolate draws image grids" in capsys.readouterr().err
    assert sample(plain, tmp_path / "t.png", "--num", "2", "--interpolate", "1") == 2


def test_labels_give_one_row_per_class_with_shared_latents(plain, tmp_path, capsys):
    cond = exported(tmp_path, "cond", "model.num_classes=10")
    assert sample(cond, tmp_path / "all.npz", "--num", "4", "--labels", "--seed", "2") == 0
    arrays = np.load(tmp_path / "all.npz")
    assert arrays["images"].shape == (40, 28, 28, 1)
    assert arrays["labels"].tolist() == [c for c in range(10) for _ in range(4)]
    g = load_generator(cond)
    with torch.no_grad():
        latent = g.latent(4, 2 * 100_003)
        row7 = g(latent, torch.full((4,), 7))
    expected = ((row7.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(arrays["images"][28:32], expected)  # row 7: the same 4 latents, class 7
    assert not np.array_equal(arrays["images"][0:4], arrays["images"][28:32])  # the class matters

    assert sample(cond, tmp_path / "some.png", "--num", "5", "--labels", "3", "7") == 0
    assert Image.open(tmp_path / "some.png").size == (5 * 30 + 2, 2 * 30 + 2)  # 2 rows of 5
    capsys.readouterr()
    assert sample(cond, tmp_path / "x.npz", "--num", "2", "--labels", "10") == 2
    assert "--labels: [10] outside the model's classes; valid: 0..9" in capsys.readouterr().err
    assert sample(plain, tmp_path / "x.npz", "--num", "2", "--labels") == 2
    assert "--labels needs a class-conditional model" in capsys.readouterr().err
