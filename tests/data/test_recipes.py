"""Every recipe in configs/ trains 2 steps, in-process, on local stand-in data of its shape.

Only sizes shrink (widths or channel_base, batch, steps); the resolution, channels, labels, loss,
penalties, augmentation, EMA and precision are the recipe's. The stand-ins are real images: the
embedded MNIST digits, the CelebA-shaped parquet of conftest.py, and crops of scikit-image's
photographs at 32 px (CIFAR-10: columns `img` and `label`) and 256 px (FFHQ as a zip, AFHQ as a
folder of class folders, LSUN Bedroom through `distgan prepare`).
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from distgan.config import load_config
from distgan.data.prepare import prepare
from distgan.generation import load_generator
from distgan.trainer import train

REPO = Path(__file__).resolve().parents[2]
# Run with their own extra checks (spectral norm placement, EMA sampling) by test_celeba_resnet_configs.py.
COVERED_ELSEWHERE = {"celeba_resnet", "celeba_resnet_128"}

COMMON = [
    "data.batch_size=2",
    "data.num_workers=0",
    "data.shuffle_buffer=8",
    "train.steps=2",
    "log.every=1",
    "log.sample_every=0",
    "checkpoint.every=0",
]
SMALL = {
    "dcgan": ["model.g_width=4", "model.d_width=4"],
    "resnet": ["model.g_width=4", "model.d_width=4"],
    "mlp": ["model.g_width=4", "model.d_width=4", "data.toy_samples=64"],
    # 512 // side feature maps, at most 4: 2 at 256 px; a small mapping network; groups that divide 2
    "stylegan2": [
        "model.channel_base=512",
        "model.channel_max=4",
        "model.w_dim=8",
        "model.latent_dim=8",
        "model.mapping_layers=1",
        "model.mbstd_group=2",
    ],
}
# recipe -> the stand-in it reads (a fixture below, or None: the recipe's own local data)
STAND_IN = {
    "quickstart": None,  # the embedded digits
    "mnist_best": None,
    "mnist_uncond": None,
    "stacked_mnist": None,  # stacks of the embedded digits
    "mnist_dcgan": "mnist",
    "mnist_cgan": "mnist",
    "mnist_wgan": "mnist",
    "toy_ring": None,
    "toy_grid": None,
    "celeba_dcgan": "celeba",
    "celeba_wgan": "celeba",
    "cifar10": "cifar10",
    "cifar10_cond": "cifar10",
    "afhq256": "afhq256",
    "lsun_bedroom": "lsun_bedroom",
    "stylegan2_ffhq256": "ffhq256",
    "stylegan2_cifar10": "cifar10",
    "stylegan2_mnist": None,
}


pytestmark = pytest.mark.usefixtures("one_thread")


def photographs() -> list[np.ndarray]:
    import skimage.data

    names = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "retina"]
    return [getattr(skimage.data, name)()[..., :3] for name in names]


def crops(side: int, count: int, seed: int = 0) -> list[bytes]:
    """PNG bytes of `count` side x side crops of the photographs (scaled so the short side is 1.5 x side)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        image = Image.fromarray(photographs()[k % 6])
        scale = 1.5 * side / min(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)))
        left = int(rng.integers(0, image.width - side + 1))
        top = int(rng.integers(0, image.height - side + 1))
        buffer = io.BytesIO()
        image.crop((left, top, left + side, top + side)).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory, celeba_dir) -> dict[str, list[str]]:
    """Overrides that point each recipe at its stand-in data."""
    import datasets

    out = tmp_path_factory.mktemp("recipes")
    cifar = out / "cifar10.parquet"
    features = datasets.Features(
        {"img": datasets.Image(), "label": datasets.ClassLabel(names=[str(k) for k in range(10)])}
    )
    rows = [{"img": {"bytes": png, "path": None}, "label": k % 10} for k, png in enumerate(crops(32, 20))]
    datasets.Dataset.from_list(rows, features=features).to_parquet(str(cifar))

    faces = out / "ffhq.zip"
    with zipfile.ZipFile(faces, "w") as archive:
        for k, png in enumerate(crops(256, 4)):
            archive.writestr(f"{k:05d}.png", png)

    animals = out / "afhq"
    for k, png in enumerate(crops(256, 6, seed=1)):
        folder = animals / ("cat", "dog", "wild")[k % 3]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{k}.png").write_bytes(png)

    photos = out / "bedrooms"  # whole photographs, not square: prepare crops the centre and resizes
    photos.mkdir()
    for k, pixels in enumerate(photographs()[:4]):
        Image.fromarray(pixels).save(photos / f"{k}.png")
    prepared = out / "lsun_bedroom256"
    source = ["data.source=imagefolder", f"data.path={photos}", "data.num_workers=0"]
    prepare(str(REPO / "configs/lsun_bedroom.yaml"), str(prepared), 2, source)

    return {
        "mnist": ["data.source=embedded"],
        "celeba": ["data.source=parquet", f"data.path={celeba_dir}"],
        "cifar10": ["data.source=parquet", f"data.path={cifar}"],
        "ffhq256": ["data.source=zip", f"data.path={faces}"],
        "afhq256": [f"data.path={animals}"],
        "lsun_bedroom": [f"data.path={prepared}"],
    }


def test_every_recipe_is_run():
    recipes = {path.stem for path in (REPO / "configs").glob("*.yaml")}
    assert recipes == set(STAND_IN) | COVERED_ELSEWHERE, "add the new recipe to STAND_IN with a stand-in"


@pytest.mark.parametrize("recipe", sorted(STAND_IN))
def test_recipe_trains_two_steps_on_its_stand_in(recipe, stand_ins, tmp_path, fresh_accelerate):
    shipped = load_config(str(REPO / "configs" / f"{recipe}.yaml"))
    data = stand_ins[STAND_IN[recipe]] if STAND_IN[recipe] else []
    out = tmp_path / "run"
    cfg = load_config(
        str(REPO / "configs" / f"{recipe}.yaml"),
        [*data, *COMMON, *SMALL[shipped.model.arch], f"train.out_dir={out}"],
    )
    assert (cfg.data.resolution, cfg.model.channels, cfg.model.num_classes) == (
        shipped.data.resolution,
        shipped.model.channels,
        shipped.model.num_classes,
    )
    assert train(cfg, resume="never") == 0
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2]
    assert all(math.isfinite(line[key]) for line in lines for key in ("loss_d", "loss_g"))
    samples = load_generator(out).sample(2, seed=0)
    if not cfg.data.is_toy:
        side = cfg.data.resolution
        assert samples.shape == (2, cfg.model.channels, side, side)
