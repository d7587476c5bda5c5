"""Decode, crop and resize a data source once; write K parquet shards of uint8 images.

    python -m distgan.data.prepare --config configs/celeba_wgan.yaml --out data/celeba64 --num-shards 16
    python -m distgan.data.prepare --config configs/celeba_wgan.yaml --out /tmp/c64 --num-shards 4 \\
        data.source=parquet data.path=/data/celeba/*.parquet
    # then train from it (no decoding, whole shards per process when K % world_size == 0):
    python -m distgan.train --config configs/celeba_wgan.yaml data.source=prepared data.path=data/celeba64

Rows are read in source order (no shuffle) through the same transforms as training
(transforms.py, in data.num_workers DataLoader workers) and dealt round-robin to the K
shards, so shard sizes differ by at most one. Each row stores `image` (raw uint8 bytes,
H x W x C at data.resolution) and `label` when the config has data.label_column.
prepared.json, written last, marks the directory complete. Pick K so that common world
sizes divide it (e.g. 8, 16, 48). This module only writes; it does not train.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from distgan.config import load_config
from distgan.data.errors import DataError
from distgan.data.image_stream import bad_example_message
from distgan.data.sources import PREPARED_FORMAT, PREPARED_META, open_source, read_rows
from distgan.data.transforms import ChunkDecoder, ImageSpec, keep_chunk, note_conversions
from distgan.errors import UserError, report

ROWS_PER_CHUNK = 256
ROWS_PER_GROUP = 1024  # parquet row group size inside each shard


class _ShardWriter:
    """Deals rows round-robin to K parquet files, one row group per ROWS_PER_GROUP rows."""

    def __init__(self, out: Path, num_shards: int, with_labels: bool):
        self.out = out
        self.names = [f"shard-{k:05d}-of-{num_shards:05d}.parquet" for k in range(num_shards)]
        fields = [pa.field("image", pa.binary())] + ([pa.field("label", pa.int64())] if with_labels else [])
        self.schema = pa.schema(fields)
        self.writers = [pq.ParquetWriter(out / name, self.schema) for name in self.names]
        self.buffers: list[dict[str, list]] = [{f.name: [] for f in fields} for _ in self.names]
        self.count = 0

    def add(self, image: bytes, label: int | None) -> None:
        buffer = self.buffers[self.count % len(self.writers)]
        buffer["image"].append(image)
        if "label" in buffer:
            buffer["label"].append(label)
        if len(buffer["image"]) == ROWS_PER_GROUP:
            self._flush(self.count % len(self.writers))
        self.count += 1

    def _flush(self, k: int) -> None:
        if self.buffers[k]["image"]:
            self.writers[k].write_table(pa.table(self.buffers[k], schema=self.schema))
            self.buffers[k] = {name: [] for name in self.buffers[k]}

    def close(self) -> None:
        for k, writer in enumerate(self.writers):
            self._flush(k)
            writer.close()

    def remove(self) -> None:
        """Delete the shards this writer made (a prepare that is refused leaves nothing behind)."""
        for name in self.names:
            (self.out / name).unlink(missing_ok=True)


# What marks a training run's directory (run_directory.py, checkpoint/): never a place for shards.
RUN_MARKERS = (".distgan.lock", "checkpoints", "metrics.jsonl")


def _check_out(out_dir: Path) -> None:
    """--out: missing or a directory that is not a prepared dataset, not a run, and holds no links."""
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"--out: {out_dir} exists and is not a directory; choose a directory")
    if not out_dir.is_dir():
        return
    if (out_dir / PREPARED_META).exists():
        raise DataError(
            f"--out: {out_dir} already holds a prepared dataset; remove it or pick another directory"
        )
    marker = next((name for name in RUN_MARKERS if (out_dir / name).exists()), None)
    if marker is not None:
        raise DataError(
            f"--out: {out_dir} is a training run's directory (it holds {marker}); shards there would mix "
            "with the run's files: pick another directory"
        )
    link = next((p.name for p in out_dir.iterdir() if p.is_symlink()), None)
    if link is not None:
        raise DataError(
            f"--out: {out_dir}/{link} is a symbolic link; prepare never writes through links: "
            "remove it or pick another directory"
        )


def _chunks(source, limit: int | None):
    rows = []
    for index, row in enumerate(read_rows(source, source.dataset)):
        if limit is not None and index >= limit:
            break
        rows.append(
            (0, index, row[source.image_column], row[source.label_column] if source.label_column else None)
        )
        if len(rows) == ROWS_PER_CHUNK:
            yield rows
            rows = []
    if rows:
        yield rows


def prepare(
    config: str | None, out: str, num_shards: int, overrides: list[str], limit: int | None = None
) -> dict:
    """Write the prepared copy; return its metadata (also saved as out/prepared.json)."""
    cfg = load_config(config, overrides)
    if cfg.data.source in ("toy", "prepared"):
        raise DataError(f"data.source: prepare reads an image source, got {cfg.data.source!r}")
    if num_shards < 1:
        raise DataError(f"--num-shards: must be >= 1, got {num_shards}")
    if limit is not None and limit < 1:
        raise DataError(f"--limit: must be >= 1 (the first N source rows), got {limit}")
    if limit is not None and limit < num_shards:
        raise DataError(
            f"--num-shards {num_shards}: more shards than the {limit} rows of --limit would leave shards empty; "
            f"valid: --num-shards <= {limit}"
        )
    out_dir = Path(out)
    _check_out(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    source = open_source(cfg)
    spec = ImageSpec.from_config(cfg, source.image_column, source.label_column, prepared=False)
    loader = torch.utils.data.DataLoader(
        ChunkDecoder(spec, scale=False),
        sampler=_chunks(source, limit),
        batch_size=None,
        collate_fn=keep_chunk,
        num_workers=cfg.data.num_workers,
        generator=torch.Generator().manual_seed(0),
    )
    writer = _ShardWriter(out_dir, num_shards, with_labels=source.label_column is not None)
    skipped, start, last_print = 0, time.perf_counter(), 0.0
    print(
        f"prepare: {source.where} -> {out_dir} ({num_shards} shards, {spec.resolution}px, {spec.channels} ch)"
    )
    try:
        for chunk in loader:
            note_conversions(chunk)
            for bad in chunk["bad"]:
                if cfg.data.on_bad_example == "error":
                    raise DataError(bad_example_message(source, bad, f"row {bad['index']} in source order"))
                skipped += 1
            labels = (
                chunk["labels"].tolist() if chunk["labels"] is not None else [None] * len(chunk["images"])
            )
            for image, label in zip(chunk["images"].numpy(), labels, strict=True):
                writer.add(image.tobytes(), label)
            now = time.perf_counter() - start
            if now - last_print >= 2.0:
                print(f"  {writer.count} images ({writer.count / now:.0f}/s), {skipped} skipped", flush=True)
                last_print = now
    finally:
        writer.close()
    if writer.count == 0:
        writer.remove()
        raise DataError(f"data.path: {source.where!r} produced no usable images")
    if writer.count < num_shards:
        writer.remove()
        raise DataError(
            f"--num-shards {num_shards}: {source.where!r} gave only {writer.count} usable images, which would "
            f"leave shards empty; nothing was kept: valid: --num-shards <= {writer.count}"
        )
    meta = {
        "format": PREPARED_FORMAT,
        "resolution": spec.resolution,
        "channels": spec.channels,
        "num_examples": writer.count,
        "skipped_examples": skipped,
        "num_shards": num_shards,
        "files": writer.names,
        "label_column": source.label_column,
        "source": {
            "source": cfg.data.source,
            "path": source.where,
            "name": cfg.data.name,
            "split": cfg.data.split,
        },
        "center_crop": cfg.data.center_crop,
        "crop_size": cfg.data.crop_size,
    }
    (out_dir / PREPARED_META).write_text(json.dumps(meta, indent=2))
    took = time.perf_counter() - start
    print(
        f"prepare: wrote {writer.count} images in {took:.1f}s ({writer.count / took:.0f}/s), {skipped} skipped"
    )
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m distgan.data.prepare", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--config", default=None, help="experiment YAML (data.* and model.channels are used)")
    parser.add_argument("--out", required=True, help="output directory (train with data.source=prepared)")
    parser.add_argument("--num-shards", type=int, required=True, help="parquet files to write (K)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N source rows (for trials)")
    parser.add_argument("overrides", nargs="*", help="KEY=VALUE config overrides, e.g. data.resolution=32")
    args = parser.parse_args(argv)
    try:
        prepare(args.config, args.out, args.num_shards, args.overrides, args.limit)
    except UserError as err:
        return report(err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
