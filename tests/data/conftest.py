"""Data fixtures: real images only, built into tmp at session start (no committed binaries).

- celeba_dir: a CelebA-shaped local parquet dataset (178x218 RGB JPEG, the Hub
  `flwrlabs/celeba` schema: image, celeb_id, 40 boolean attributes) cut from the real
  photographs that scikit-image ships (7 photos x 18 crops); 3 files, so 2 and 4 processes
  take the split-by-examples path.
- mnist_3files: the embedded real MNIST digits rewritten as 3 parquet files (same schema).
- bad_files: small MNIST parquet files each holding one bad row (corrupt bytes, a label
  outside 0-9, an image smaller than the crop) at row BAD_ROW.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from distgan.data.sources import EMBEDDED_PATH

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()
CELEBA_ROWS_PER_PHOTO = 18
BAD_ROW = 7  # row (in file order) of the bad example in each bad_files parquet
BAD_GOOD_ROWS = 20  # good rows in each bad file


def real_photographs() -> list[np.ndarray]:
    """Real colour photographs shipped inside scikit-image (no download)."""
    import skimage.data

    names = [
        "astronaut",
        "coffee",
        "chelsea",
        "rocket",
        "hubble_deep_field",
        "immunohistochemistry",
        "retina",
    ]
    return [getattr(skimage.data, name)() for name in names]


def jpeg(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def celeba_rows(seed: int = 0) -> list[dict]:
    """178x218 (W x H) crops of real photographs at random positions."""
    rng = np.random.default_rng(seed)
    rows = []
    for photo_id, photo in enumerate(real_photographs()):
        image = Image.fromarray(photo)
        scale = 320 / min(image.size)  # faces in CelebA fill the frame: zoom big photos out once
        image = image.resize(
            (round(image.width * scale), round(image.height * scale)), Image.Resampling.BILINEAR
        )
        for _ in range(CELEBA_ROWS_PER_PHOTO):
            left = int(rng.integers(0, image.width - 178 + 1))
            top = int(rng.integers(0, image.height - 218 + 1))
            crop = np.asarray(image.crop((left, top, left + 178, top + 218)))
            row = {"image": {"bytes": jpeg(crop), "path": None}, "celeb_id": photo_id}
            row.update({name: bool(rng.integers(0, 2)) for name in CELEBA_ATTRIBUTES})
            rows.append(row)
    return rows


def write_parquet(rows: list[dict], features, path: Path) -> Path:
    import datasets

    datasets.Dataset.from_list(rows, features=features).to_parquet(str(path))
    return path


@pytest.fixture(scope="session")
def celeba_dir(tmp_path_factory) -> Path:
    import datasets

    features = datasets.Features(
        {"image": datasets.Image(), "celeb_id": datasets.Value("int64")}
        | {name: datasets.Value("bool") for name in CELEBA_ATTRIBUTES}
    )
    rows = celeba_rows()
    out = tmp_path_factory.mktemp("celeba")
    thirds = np.array_split(np.arange(len(rows)), 3)
    for k, part in enumerate(thirds):
        write_parquet([rows[i] for i in part], features, out / f"train-{k:05d}-of-00003.parquet")
    return out


@pytest.fixture(scope="session")
def mnist_3files(tmp_path_factory) -> Path:
    table = pq.read_table(EMBEDDED_PATH)
    out = tmp_path_factory.mktemp("mnist3")
    bounds = np.linspace(0, table.num_rows, 4).astype(int)
    for k in range(3):
        pq.write_table(table.slice(bounds[k], bounds[k + 1] - bounds[k]), out / f"part-{k}.parquet")
    return out


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    """{'corrupt' | 'label' | 'small': parquet file} with one bad row at BAD_ROW."""
    import datasets

    table = pq.read_table(EMBEDDED_PATH).slice(0, BAD_GOOD_ROWS).to_pylist()
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=[str(d) for d in range(10)])}
    )
    png = io.BytesIO()
    Image.fromarray(np.full((20, 20), 128, dtype=np.uint8)).save(png, format="PNG")
    cases = {
        "corrupt": {"image": {"bytes": b"\x89PNG\r\n\x1a\n this is not an image", "path": None}, "label": 3},
        "label": {"image": table[0]["image"], "label": 12},
        "small": {"image": {"bytes": png.getvalue(), "path": None}, "label": 4},
    }
    out = tmp_path_factory.mktemp("bad")
    paths = {}
    for name, bad in cases.items():
        rows = table[:BAD_ROW] + [bad] + table[BAD_ROW:]
        if name == "label":  # ClassLabel would refuse 12 on write: store the label as a plain int
            feats = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
        else:
            feats = features
        paths[name] = write_parquet(rows, feats, out / f"{name}.parquet")
    return paths
