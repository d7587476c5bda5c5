"""Bit-exactness of eval.resize=clean against clean-fid's own resize, on seeded test images.

clean-fid cannot be a dependency (it requires torchvision, which pulls a CUDA build of torch), but
its resize module needs only numpy, torch and Pillow:

    pip install --no-deps clean-fid==0.1.35
    python benchmarks/clean_resize_check.py      # writes benchmarks/results/clean_resize_check.json

The SHA-256 of clean-fid's output on these images is what tests/metrics/test_clean_resize.py
compares distgan's resize against, so CI checks the same bits without clean-fid installed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import PIL
import torch

from distgan.metrics.clean_resize import clean_resize

OUT = Path(__file__).resolve().parent / "results" / "clean_resize_check.json"


def test_images() -> list[np.ndarray]:
    """Seeded noise at the sides GANs use, one larger than 299 (a downscale) and a smooth ramp."""
    rng = np.random.default_rng(2024)
    images = [rng.integers(0, 256, (side, side, 3), dtype=np.uint8) for side in (8, 28, 32, 64, 300)]
    ramp = np.linspace(0, 255, 32).astype(np.uint8)[None, :, None]
    return [*images, np.tile(ramp, (32, 1, 3))]


def digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype=np.float32).tobytes())
    return h.hexdigest()


def ours(image: np.ndarray) -> np.ndarray:
    return clean_resize(torch.from_numpy(image).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()


def main() -> None:
    import cleanfid
    from cleanfid.resize import make_resizer

    theirs = make_resizer("PIL", False, "bicubic", (299, 299))  # clean-fid's "clean" mode
    rows = []
    for image in test_images():
        a, b = theirs(image), ours(image)
        rows.append({"shape": list(image.shape), "bit_equal": bool(a.dtype == b.dtype and np.array_equal(a, b)),
                     "max_abs_diff": float(np.abs(a - b).max())})  # fmt: skip
    result = {
        "clean_fid": getattr(cleanfid, "__version__", "0.1.35"),
        "pillow": PIL.__version__,
        "images": rows,
        "all_bit_equal": all(r["bit_equal"] for r in rows),
        "clean_fid_sha256": digest(theirs(i) for i in test_images()),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
