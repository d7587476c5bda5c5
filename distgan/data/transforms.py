"""Turn raw rows into training tensors: decode, L/RGB, center crop, resize, x-flip, scale to [-1, 1].

`ChunkDecoder` is the map-style "dataset" handed to torch's DataLoader: its
"index" is a chunk of raw rows, so decoding runs in the DataLoader workers
(data.num_workers) while the row order stays decided in the main process. A row
that cannot be used never raises inside a worker: it comes back in `bad` with
its position, column and reason, and the main process raises the DataError (or
skips and counts it). This module does not read sources or track positions.
"""

from __future__ import annotations

import io
import numbers
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from distgan.config import ExperimentConfig

# (epoch, index in this process's stream, image value, label value or None)
RawRow = tuple[int, int, Any, Any]


@dataclass(frozen=True)
class ImageSpec:
    """Everything a worker needs to turn a raw row into a (C, H, W) uint8 image and a label."""

    channels: int
    resolution: int
    center_crop: bool
    crop_size: int  # 0 = the image's short side
    num_classes: int  # 0 = any integer label is fine
    image_column: str
    label_column: str | None
    prepared: bool  # rows hold raw uint8 HWC bytes at the target size (distgan.data.prepare)
    mirror_key: int | None = None  # data.mirror: the stream's key for `mirrored` (None = never flip)

    @classmethod
    def from_config(cls, cfg: ExperimentConfig, image_column: str, label_column: str | None, prepared: bool):
        return cls(
            channels=cfg.model.channels,
            resolution=cfg.data.resolution,
            center_crop=cfg.data.center_crop,
            crop_size=cfg.data.crop_size,
            num_classes=cfg.model.num_classes,
            image_column=image_column,
            label_column=label_column,
            prepared=prepared,
        )


MASK64 = (1 << 64) - 1


def _mix64(z: int) -> int:
    """splitmix64's finaliser: a well-spread 64-bit hash of a 64-bit integer."""
    z = (z + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def mirror_key(seed: int, rank: int) -> int:
    """The flip key of one process's stream (train.seed, rank)."""
    return _mix64(_mix64(seed) ^ rank)


def mirrored(key: int, epoch: int, index: int) -> bool:
    """Is example `index` of `epoch` of this stream flipped? A hash, not a random generator: the
    same answer whichever worker decodes it, whatever came before, and after a resume."""
    return bool(_mix64(_mix64(key ^ epoch) ^ index) & 1)


class BadExample(Exception):
    """One row that cannot be used (internal: turned into a DataError or a skip by the stream)."""

    def __init__(self, column: str, reason: str):
        super().__init__(f"{column}: {reason}")
        self.column, self.reason = column, reason


def _open(value: Any, column: str) -> Image.Image:
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, dict):  # datasets' Image feature, undecoded: {"bytes": ..., "path": ...}
        data, path = value.get("bytes"), value.get("path")
        source: Any = io.BytesIO(data) if data is not None else path
    elif isinstance(value, bytes | bytearray):
        source = io.BytesIO(value)
    elif isinstance(value, str):
        source = value
    else:
        raise BadExample(
            column, f"holds a {type(value).__name__}, not an image (valid: encoded bytes, a path)"
        )
    if source is None:
        raise BadExample(column, "is empty (no bytes and no path)")
    try:
        image = Image.open(source)
        image.load()  # decode now: a truncated file must fail here, not later
    except Exception as err:  # noqa: BLE001 - PIL raises many types for corrupt data
        raise BadExample(column, f"cannot be decoded as an image ({type(err).__name__}: {err})") from None
    return image


def image_to_uint8(value: Any, spec: ImageSpec, notes: set[str] | None = None) -> np.ndarray:
    """Decode one image value to uint8 (H, W, C) at spec.resolution; raises BadExample.

    `notes` collects what was done to images of another mode (conversions, see convert_mode)."""
    notes = set() if notes is None else notes
    col, res = f"column {spec.image_column!r}", spec.resolution
    if spec.prepared:
        expected = res * res * spec.channels
        if not isinstance(value, bytes | bytearray) or len(value) != expected:
            size = len(value) if isinstance(value, bytes | bytearray) else type(value).__name__
            raise BadExample(col, f"prepared image has {size} bytes, expected {expected}")
        return np.frombuffer(value, dtype=np.uint8).reshape(res, res, spec.channels)
    image = convert_mode(_open(value, col), "L" if spec.channels == 1 else "RGB", col, notes)
    if spec.center_crop:
        width, height = image.size
        side = spec.crop_size or min(width, height)
        if side > min(width, height):
            raise BadExample(
                col,
                f"image is {width}x{height} px, smaller than the {side} px center crop (data.crop_size); "
                f"valid: data.crop_size <= {min(width, height)} (0 = the short side)",
            )
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    if image.size != (res, res):
        image = image.resize((res, res), Image.Resampling.BICUBIC)  # antialiased when shrinking
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


# What happens to an image whose mode is not the model's (L for 1 channel, RGB for 3); said once per mode.
CONVERSIONS = {
    "RGBA": "the alpha channel is dropped (transparent pixels show the colour stored under them)",
    "LA": "the alpha channel is dropped (transparent pixels show the value stored under them)",
    "PA": "the palette is expanded and the alpha channel dropped",
    "P": "the palette is expanded to its colours (any transparency is dropped)",
    "CMYK": "converted by Pillow's plain CMYK formula, without a colour profile (colours may shift)",
    "1": "1-bit pixels become 0 and 255",
    "L": "the grey value is copied to all three channels",
    "RGB": "the channels are mixed to grey (ITU-R 601-2 luma)",
    "I;16": "16-bit values are scaled to 8 bits (value / 257, rounded)",
}
SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def convert_mode(image: Image.Image, mode: str, column: str, notes: set[str]) -> Image.Image:
    """`image` in `mode` (L or RGB); adds one line per source mode to `notes` saying what was done.

    16-bit greyscale is scaled, not clipped (Pillow's convert would turn almost every pixel white);
    float and 32-bit integer images have no fixed range, so no single 8-bit scaling is right."""
    source = image.mode
    if source == mode:
        return image
    if source in SIXTEEN_BIT or (source == "I" and image.format == "PNG"):  # Pillow may open 16-bit PNGs as I
        wide = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8), mode="L")
        notes.add(f"{source} images -> {mode}: {CONVERSIONS['I;16']}")
        return image if mode == "L" else image.convert(mode)
    if source in ("I", "F"):
        raise BadExample(
            column,
            f"is a {'32-bit float' if source == 'F' else '32-bit integer'} image (mode {source}) with no fixed "
            "range; convert the data set to 8-bit (or 16-bit PNG) images first",
        )
    if source == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # Pillow's recommended path for palette transparency
    try:
        converted = image.convert(mode)
    except ValueError as err:
        raise BadExample(column, f"is a {source} image that cannot be converted to {mode} ({err})") from None
    notes.add(f"{source} images -> {mode}: {CONVERSIONS.get(source, 'converted by Pillow')}")
    return converted


def note_conversions(chunk: dict) -> None:
    """Warn once per process about each kind of conversion a decoded chunk reports (see convert_mode).

    Call it in the process that reads the chunks: DataLoader workers would each say it again."""
    for note in chunk.pop("conversions", ()):
        if note not in _NOTED:
            _NOTED.add(note)
            warnings.warn(f"image mode: {note}", stacklevel=2)


_NOTED: set[str] = set()


def label_to_int(value: Any, spec: ImageSpec) -> int:
    """Check one label value; raises BadExample naming the column and the valid range."""
    col = f"column {spec.label_column!r}"
    if value is None:
        raise BadExample(col, "label is missing (null)")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise BadExample(col, f"label {value!r} is not an integer class index")
    label = int(value)
    if spec.num_classes > 0 and not 0 <= label < spec.num_classes:
        raise BadExample(
            col,
            f"label {label} is outside model.num_classes={spec.num_classes}; valid: 0..{spec.num_classes - 1}",
        )
    return label


def to_float_images(pixels: list[np.ndarray], spec: ImageSpec) -> torch.Tensor:
    """Stack uint8 (H, W, C) images into float32 (N, C, H, W) in [-1, 1] (exactly -1 and 1 at 0, 255)."""
    if not pixels:
        return torch.empty((0, spec.channels, spec.resolution, spec.resolution), dtype=torch.float32)
    batch = np.ascontiguousarray(np.stack(pixels).transpose(0, 3, 1, 2), dtype=np.float32)
    np.divide(batch, 127.5, out=batch)
    batch -= 1.0
    return torch.from_numpy(batch)


def _stack_uint8(pixels: list[np.ndarray], spec: ImageSpec) -> torch.Tensor:
    res = spec.resolution
    return (
        torch.from_numpy(np.stack(pixels))
        if pixels
        else torch.empty((0, res, res, spec.channels), dtype=torch.uint8)
    )


def decode_rows(rows: list[RawRow], spec: ImageSpec, scale: bool = True) -> dict:
    """Decode a chunk of raw rows; unusable rows are reported in 'bad', never raised.

    images: float32 (N, C, H, W) in [-1, 1], or with scale=False uint8 (N, H, W, C) (for prepare).
    """
    pixels, labels, epochs, indices, bad, notes = [], [], [], [], [], set()
    for epoch, index, image_value, label_value in rows:
        try:
            label = label_to_int(label_value, spec) if spec.label_column else 0
            image = image_to_uint8(image_value, spec, notes)
            if spec.mirror_key is not None and mirrored(spec.mirror_key, epoch, index):
                image = image[:, ::-1]  # (H, W, C): left-right
            pixels.append(image)
        except BadExample as err:
            path = image_value.get("path") if isinstance(image_value, dict) else None
            # The raw image goes back so the main process can name the file/row it came from.
            bad.append(
                {"epoch": epoch, "index": index, "column": err.column, "reason": err.reason}
                | {"path": path, "image": image_value, "label": label_value}
            )
            continue
        labels.append(label)
        epochs.append(epoch)
        indices.append(index)
    return {
        "images": to_float_images(pixels, spec) if scale else _stack_uint8(pixels, spec),
        "labels": torch.tensor(labels, dtype=torch.int64) if spec.label_column else None,
        "epochs": torch.tensor(epochs, dtype=torch.int64),
        "indices": torch.tensor(indices, dtype=torch.int64),
        "bad": bad,
        "conversions": sorted(notes),  # for note_conversions, in the reading process
    }


class ChunkDecoder(torch.utils.data.Dataset):
    """DataLoader 'dataset' whose index is a chunk of raw rows (see the module docstring)."""

    def __init__(self, spec: ImageSpec, scale: bool = True):
        self.spec, self.scale = spec, scale

    def __getitem__(self, rows: list[RawRow]) -> dict:
        return decode_rows(rows, self.spec, self.scale)


def keep_chunk(chunk: dict) -> dict:
    """collate_fn: a chunk is already collated by decode_rows."""
    return chunk
