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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from distgan.config import ExperimentConfig
from distgan.errors import CheckpointError

LATEST = "latest"
EMA_WEIGHTS = "generator_ema"  # <checkpoint>/generator_ema.safetensors (DESIGN.md)
TMP_PREFIX = ".tmp-"


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


def resume_point(resume: str, run_dir: str | Path) -> Path | None:
    """--resume: auto (the run's latest checkpoint, if any), never, or a PATH (must be a checkpoint)."""
    if resume == "never":
        return None
    if resume == "auto":
        return latest_checkpoint(run_dir)
    return resolve_checkpoint(resume)


def read_meta(checkpoint_dir: Path) -> dict[str, Any]:
    return json.loads((checkpoint_dir / "meta.json").read_text())


@dataclass
class TrainState:
    step: int = 0  # G steps done
    images_seen: int = 0  # real images consumed by D, all processes together


class Checkpointer:
    """Saves and restores the whole training state (models, EMA, optimizers, data position, meta).

    What is saved: the backend's state (optimizers, scaler, RNG per rank; its own format), the
    contract's safetensors weights (generator, discriminator, generator_ema), this rank's data
    position, meta.json and the resolved config.
    """

    def __init__(self, run_dir, accelerator, backend, cfg: ExperimentConfig, ema, stream, machines: int = 1):
        self.root = Path(run_dir) / "checkpoints"
        self.accelerator = accelerator  # ranks and barriers
        self.backend = backend  # writes/reads optimizer, scaler and RNG state in its own format
        self.cfg, self.ema, self.stream, self.machines = cfg, ema, stream, machines
        self.keep_last = cfg.checkpoint.keep_last

    def save(self, state: TrainState) -> Path:
        """Collective: every process must call it. Returns the final checkpoint directory."""
        weights = {"generator": self.backend.generator_module, "discriminator": self.backend.critic_module}
        if self.ema is not None:
            weights[EMA_WEIGHTS] = self.ema.model
        meta = {
            "images_seen": state.images_seen,
            "world_size": self.accelerator.num_processes,
            "num_machines": self.machines,
            "backend": self.cfg.distributed.backend,
            "mixed_precision": self.cfg.train.mixed_precision,
            "config_hash": self.cfg.hash(),
            "versions": torch_versions(),
        }
        config_yaml = yaml.safe_dump(self.cfg.to_dict(), sort_keys=False)
        return self._write(state.step, weights, meta, {"data": self.stream.state_dict()}, config_yaml)

    def restore(self, checkpoint_dir: Path) -> TrainState:
        """Restore every rank's backend state, RNG, EMA and data position; return the counters."""
        meta, rank_state = self._read(checkpoint_dir)
        self.stream.load_state_dict(rank_state["data"])
        if self.ema is not None:
            load_weights(self.ema.model, checkpoint_dir / f"{EMA_WEIGHTS}.safetensors")
        self.accelerator.print(f"resumed from {checkpoint_dir} at step {meta['step']}")
        return TrainState(step=meta["step"], images_seen=meta["images_seen"])

    def _write(
        self,
        step: int,
        weights: dict[str, nn.Module],
        meta: dict[str, Any],
        rank_state: dict[str, Any],
        config_yaml: str,
    ) -> Path:
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

    def _read(self, checkpoint_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
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
