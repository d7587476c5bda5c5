"""Checkpoints: safetensors weights + resumable state, written atomically, with a `latest` pointer.

Layout (DESIGN.md run-directory contract):
    checkpoints/latest                    name of the newest COMPLETE checkpoint directory
    checkpoints/step_0000100/
        generator.safetensors             weights only, loadable without the trainer
        generator_ema.safetensors         when EMA is on
        discriminator.safetensors
        meta.json                         step, images_seen, world size, versions, config hash
        config.yaml                       the resolved config (a checkpoint is self-contained)
        state/                            backend state: optimizers, scaler, RNG per rank
        ranks/rank_00000.json             per-process state (data position)

A checkpoint is written under `.tmp-step_...` and renamed when complete; `latest` is then
replaced with os.replace. A crash at any point leaves `latest` naming a complete checkpoint.
This module never decides WHEN to save; the trainer does.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

LATEST = "latest"
TMP_PREFIX = ".tmp-"


class CheckpointError(RuntimeError):
    """A checkpoint path that cannot be used: the message says what was expected."""


def checkpoint_name(step: int) -> str:
    return f"step_{step:07d}"


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_weights(module: nn.Module, path: Path) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(tensors, str(path))


def load_weights(module: nn.Module, path: Path) -> None:
    module.load_state_dict(load_file(str(path)))


def resolve_checkpoint(path: str | Path) -> Path:
    """A run directory (-> its latest checkpoint), a `checkpoints` directory, or one checkpoint."""
    path = Path(path)
    if (path / "meta.json").is_file():
        return path
    for pointer in (path / "checkpoints" / LATEST, path / LATEST):
        if pointer.is_file():
            target = pointer.parent / pointer.read_text().strip()
            if not (target / "meta.json").is_file():
                raise CheckpointError(f"{pointer} names {target.name}, which is not a complete checkpoint")
            return target
    raise CheckpointError(
        f"{path}: not a checkpoint; expected a run directory with checkpoints/latest, "
        f"or a checkpoint directory containing meta.json"
    )


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or None when it has none yet."""
    pointer = Path(run_dir) / "checkpoints" / LATEST
    if not pointer.is_file():
        return None
    return resolve_checkpoint(Path(run_dir))


def read_meta(checkpoint_dir: Path) -> dict[str, Any]:
    return json.loads((checkpoint_dir / "meta.json").read_text())


class Checkpointer:
    """Saves and restores the trainer's state through an Accelerator, atomically."""

    def __init__(self, run_dir: str | Path, accelerator, backend, keep_last: int) -> None:
        self.root = Path(run_dir) / "checkpoints"
        self.accelerator = accelerator  # ranks and barriers
        self.backend = backend  # writes/reads optimizer, scaler and RNG state in its own format
        self.keep_last = keep_last

    def save(
        self,
        step: int,
        weights: dict[str, nn.Module],
        meta: dict[str, Any],
        rank_state: dict[str, Any],
        config_yaml: str,
    ) -> Path:
        """Collective: every process must call it. Returns the final checkpoint directory."""
        acc = self.accelerator
        name = checkpoint_name(step)
        tmp = self.root / f"{TMP_PREFIX}{name}"
        if acc.is_main_process:
            self.root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)  # a crashed earlier attempt
            (tmp / "ranks").mkdir(parents=True)
        acc.wait_for_everyone()
        self.backend.save_state(tmp / "state")
        _write_text_atomic(tmp / "ranks" / f"rank_{acc.process_index:05d}.json", json.dumps(rank_state))
        acc.wait_for_everyone()  # every rank's files are in place before the rename
        final = self.root / name
        if acc.is_main_process:
            for file_stem, module in weights.items():
                save_weights(module, tmp / f"{file_stem}.safetensors")
            (tmp / "config.yaml").write_text(config_yaml)
            meta = {**meta, "step": step, "saved_at": time.time()}
            _write_text_atomic(tmp / "meta.json", json.dumps(meta, indent=2))
            if final.exists():  # re-saving the same step (e.g. after a resume): replace it whole
                old = self.root / f"{TMP_PREFIX}old-{name}"
                shutil.rmtree(old, ignore_errors=True)
                os.replace(final, old)
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
            _write_text_atomic(self.root / LATEST, name + "\n")
            self._prune()
        acc.wait_for_everyone()
        return final

    def _prune(self) -> None:
        complete = sorted(
            (p for p in self.root.glob("step_*") if (p / "meta.json").is_file()),
            key=lambda p: (len(p.name), p.name),
        )
        for old in complete[: -self.keep_last]:
            shutil.rmtree(old, ignore_errors=True)

    def load(self, checkpoint_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        """Restore the backend's state; return (meta, this process's rank_state)."""
        acc = self.accelerator
        meta = read_meta(checkpoint_dir)
        saved_world = meta.get("world_size")
        if saved_world != acc.num_processes:
            raise CheckpointError(
                f"{checkpoint_dir} was written by {saved_world} processes, this run has "
                f"{acc.num_processes}: resume with the same number of processes "
                f"(per-process RNG and data positions are part of the checkpoint)"
            )
        self.backend.load_state(checkpoint_dir / "state")
        rank_file = checkpoint_dir / "ranks" / f"rank_{acc.process_index:05d}.json"
        return meta, json.loads(rank_file.read_text())


def torch_versions() -> dict[str, str]:
    import accelerate

    return {"torch": torch.__version__, "accelerate": accelerate.__version__}
