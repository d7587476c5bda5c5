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
        ranks/rank_00000.json             per-process state (data position; with several processes
                                          also the rank's own BatchNorm running stats)
        manifest.json                     size + sha256 of every file above, written last

A checkpoint is written under `.tmp-step_...` and renamed when complete; `latest` is then
replaced with os.replace. A crash at any point leaves `latest` naming a complete checkpoint; a
failed write (disk full) leaves the previous one as `latest` and says how much space is needed.
A checkpoint resumes on another number of processes too (`_restore_resized`): one warning line.
What is saved is registered once (`CheckpointParts`): the backend's state, objects with
`state_dict()` / `load_state_dict()` shared by all ranks (meta.json) or per rank (ranks/), the
contract's weights files and text files. This module never decides WHEN to save, nor whether the
state is finite; the trainer does.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors.torch import load_file, save_file
from torch import nn

import distgan.run_layout as run_layout
from distgan.checkpoint.locate import (
    LATEST,
    checkpoint_name,
    complete_checkpoints,
    latest_checkpoint,
    read_meta,
    write_manifest,
)
from distgan.errors import CheckpointError
from distgan.files import TMP_PREFIX, write_atomic

EMA_WEIGHTS = run_layout.GENERATOR_EMA  # <checkpoint>/generator_ema.safetensors (DESIGN.md)


def write_text_atomic(path: Path, text: str) -> None:
    """`text` in `path` through a temporary name and os.replace: readers see old or new, never half."""
    write_atomic(path, text)


def save_weights(module: nn.Module, path: Path) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(tensors, str(path))


def load_weights(module: nn.Module, path: Path) -> None:
    module.load_state_dict(load_file(str(path)))


class Stateful(Protocol):
    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


@dataclass
class CheckpointParts:
    """What a checkpoint holds, registered once by the trainer. Adding state to checkpoints is one
    more entry here, never a change to the Checkpointer."""

    backend: Any  # G, D, optimizers, scaler, RNG per rank: `save_state(dir)` / `load_state(dir)`
    shared: list[Stateful]  # the same on every rank; their state_dicts merge into meta.json
    # each rank's own (data position, ADA tally): ranks/rank_N.json. On another number of processes
    # a part's `load_resharded(all saved ranks' states)` if it has one, else its numbers are sums.
    per_rank: dict[str, Stateful]
    weights: dict[str, nn.Module]  # the contract's weights files, written by the main process
    restored_weights: tuple[str, ...] = ()  # of those, the ones read back (G and D come with the backend)
    facts: dict[str, Any] = field(default_factory=dict)  # meta.json facts about the run (world size, ...)
    texts: dict[str, str] = field(default_factory=dict)  # more files, e.g. the resolved config.yaml


class Checkpointer:
    """Saves and restores the registered parts of the training state, atomically."""

    def __init__(self, run_dir, accelerator, parts: CheckpointParts, keep_last: int) -> None:
        self.root = Path(run_dir) / run_layout.CHECKPOINTS
        self.accelerator = accelerator  # ranks and barriers
        self.parts, self.keep_last = parts, keep_last

    def latest(self) -> Path | None:
        """The newest complete checkpoint of this run (verified), or None."""
        return latest_checkpoint(self.root.parent)

    def save(self, step: int, rank_buffers: dict[str, torch.Tensor] | None = None) -> Path:
        """Collective: every process must call it. Returns the final checkpoint directory.

        `rank_buffers`: this rank's own BatchNorm running stats while the modules hold the average
        (distributed.collectives.LazyBufferAverage); restored per rank so a resume is bitwise.
        """
        meta: dict[str, Any] = {}
        for part in self.parts.shared:
            meta.update(part.state_dict())
        meta.update(self.parts.facts, world_size=self.accelerator.num_processes)
        rank_state = {name: part.state_dict() for name, part in self.parts.per_rank.items()}
        if rank_buffers and self.accelerator.num_processes > 1:  # one process: the average is its own
            rank_state["buffers"] = {k: v.detach().float().cpu().tolist() for k, v in rank_buffers.items()}
        return self._write(step, meta, rank_state)

    def restore(self, checkpoint_dir: Path) -> dict[str, Any]:
        """Restore every registered part on every rank; return meta.json.

        A checkpoint written by another number of processes resumes too (`_restore_resized`)."""
        acc = self.accelerator
        meta = read_meta(checkpoint_dir)  # resolve_checkpoint/latest_checkpoint verified the manifest
        saved_world = int(meta.get("world_size") or 0)
        if saved_world != acc.num_processes:
            return self._restore_resized(checkpoint_dir, meta, saved_world)
        self.parts.backend.load_state(checkpoint_dir / "state")
        rank_state = self._rank_states(checkpoint_dir, [acc.process_index])[0]
        # The weights files hold the BatchNorm stats averaged over ranks (saved while averaged):
        # load them first, then give each rank its own stats back.
        self._load_weights(checkpoint_dir)
        for name, part in self.parts.per_rank.items():
            if name in rank_state:  # absent in checkpoints written without it: the part starts afresh
                part.load_state_dict(rank_state[name])
        self._restore_rank_buffers(rank_state.get("buffers", {}))
        for part in self.parts.shared:
            part.load_state_dict(meta)
        acc.print(f"resumed from {checkpoint_dir} at step {meta['step']}")
        return meta

    def _restore_resized(
        self, checkpoint_dir: Path, meta: dict[str, Any], saved_world: int
    ) -> dict[str, Any]:
        """Resume on M processes from a checkpoint of N != M. Weights, optimizer states (ZeRO's
        partitions re-split by the backend), EMA, counters, ADA's p come back as saved; what was
        per process is re-derived for the new world:
        - RNG: every process seeded from the run's seed, the step and its new rank (the backend);
        - data: the saved positions together give the rows of the epoch in progress that no
          process had read; they are split over the new processes (`load_resharded`);
        - other per-process tallies of sums (ADA's unfinished interval): the saved ranks' sums,
          scaled to the new number of processes, kept by rank 0 (the all-reduce that reads them
          then sees the same per-process average);
        - BatchNorm running stats: every process starts from the average in the weights files."""
        acc = self.accelerator
        if saved_world < 1 or not (checkpoint_dir / "ranks").is_dir():
            raise CheckpointError(
                f"{checkpoint_dir / run_layout.META}: world_size {saved_world!r} is not usable"
            )
        self.parts.backend.load_state(checkpoint_dir / "state", resized_at=int(meta["step"]))
        saved = self._rank_states(checkpoint_dir, list(range(saved_world)))
        self._load_weights(checkpoint_dir)
        for name, part in self.parts.per_rank.items():
            states = [
                {"rank": r, **state[name]} if isinstance(state.get(name), dict) else None
                for r, state in enumerate(saved)
            ]
            if any(state is None for state in states):  # written without it: the part starts afresh
                continue
            if hasattr(part, "load_resharded"):
                part.load_resharded(states)
            elif all(
                isinstance(v, (int, float)) for state in states for k, v in state.items() if k != "rank"
            ):
                part.load_state_dict(_rescaled_sums(states, acc.process_index, acc.num_processes))
            else:
                raise CheckpointError(
                    f"{checkpoint_dir}: the per-process state {name!r} cannot be carried from "
                    f"{_processes(saved_world)} to {_processes(acc.num_processes)}; resume on {saved_world}"
                )
        for part in self.parts.shared:
            part.load_state_dict(meta)
        acc.print(f"resumed from {checkpoint_dir} at step {meta['step']}")
        acc.print(
            f"warning: {checkpoint_dir.name} was written by {_processes(saved_world)} and this run has "
            f"{_processes(acc.num_processes)}: the training continues validly (same weights, optimizer states and "
            f"counters; the rest of the epoch's examples each read once) but not bitwise like an "
            f"uninterrupted run (new random streams per process, another order of the remaining examples, "
            f"BatchNorm stats restarting from the average over processes)"
        )
        return meta

    def _load_weights(self, checkpoint_dir: Path) -> None:
        for name in self.parts.restored_weights:
            load_weights(self.parts.weights[name], checkpoint_dir / f"{name}.safetensors")

    def _rank_states(self, checkpoint_dir: Path, ranks: list[int]) -> list[dict[str, Any]]:
        states = []
        for rank in ranks:
            path = checkpoint_dir / "ranks" / f"rank_{rank:05d}.json"
            try:
                states.append(json.loads(path.read_text()))
            except (OSError, ValueError) as err:
                raise CheckpointError(f"{path}: not a usable per-process state file ({err})") from None
        return states

    @torch.no_grad()
    def _restore_rank_buffers(self, saved: dict[str, list]) -> None:
        modules = {"g": self.parts.backend.generator_module, "d": self.parts.backend.discriminator_module}
        for key, values in saved.items():
            prefix, name = key.split(".", 1)
            buffer = modules[prefix].get_buffer(name)
            buffer.copy_(torch.tensor(values, dtype=buffer.dtype).view_as(buffer))

    def _write(self, step: int, meta: dict[str, Any], rank_state: dict[str, Any]) -> Path:
        acc = self.accelerator
        name = checkpoint_name(step)
        tmp = self.root / f"{TMP_PREFIX}{name}"
        try:
            if acc.is_main_process:
                self.root.mkdir(parents=True, exist_ok=True)
                shutil.rmtree(tmp, ignore_errors=True)  # a crashed earlier attempt
                (tmp / "ranks").mkdir(parents=True)
            acc.wait_for_everyone()
            self.parts.backend.save_state(tmp / "state")
            write_text_atomic(tmp / "ranks" / f"rank_{acc.process_index:05d}.json", json.dumps(rank_state))
            acc.wait_for_everyone()  # every rank's files are in place before the rename
            if acc.is_main_process:
                for file_stem, module in self.parts.weights.items():
                    save_weights(module, tmp / f"{file_stem}.safetensors")
                for file_name, text in self.parts.texts.items():
                    (tmp / file_name).write_text(text)
                write_text_atomic(
                    tmp / run_layout.META,
                    json.dumps({**meta, "step": step, "saved_at": time.time()}, indent=2),
                )
                write_manifest(tmp)  # last: a checkpoint without a matching manifest is never trusted
        except Exception as err:  # torch and safetensors wrap the OS error in their own types
            if not _is_write_failure(err):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            raise CheckpointError(_write_failure(self.root, name, err)) from None
        final = self.root / name
        if acc.is_main_process:
            if final.exists():  # re-saving the same step (e.g. after a resume): replace it whole
                old = self.root / f"{TMP_PREFIX}old-{name}"
                shutil.rmtree(old, ignore_errors=True)
                os.replace(final, old)
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
            write_text_atomic(self.root / LATEST, name + "\n")
            self._prune(keep=final)
        acc.wait_for_everyone()
        return final

    def _prune(self, keep: Path) -> None:
        """Delete the oldest complete checkpoints of this lineage beyond keep_last, never `keep`
        (just written). Checkpoints of abandoned lineages live in abandoned-*/ and are not counted."""
        complete = [p for p in complete_checkpoints(self.root) if p != keep]
        for old in complete[: max(0, len(complete) + 1 - self.keep_last)]:
            shutil.rmtree(old, ignore_errors=True)


def _processes(count: int) -> str:
    return f"{count} process" if count == 1 else f"{count} processes"


def _rescaled_sums(states: list[dict], rank: int, world: int) -> dict:
    """Per-process sums of N saved ranks carried to `world` processes: their total times world / N
    on rank 0, zero elsewhere, so the total over the new processes has the same per-process average."""
    scale = world / len(states)
    return {
        key: sum(state[key] for state in states) * scale if rank == 0 else 0 * states[0][key]
        for key in states[0]
        if key != "rank"
    }


# How torch.save ("iostream error") and safetensors ("I/O error: ... (os error 28)") report a failed
# write: neither raises OSError.
WRITE_FAILURE_SIGNS = ("iostream", "file write failed", "I/O error", "No space left on device", "(os error")


def _is_write_failure(err: BaseException | None) -> bool:
    """OSError (ENOSPC, EDQUOT, EIO...), or a library's own error over a failed write (torch reports
    "iostream error" and then a zip position error on top of it; safetensors an I/O error)."""
    while err is not None:
        text = str(err)
        if isinstance(err, OSError) or any(sign in text for sign in WRITE_FAILURE_SIGNS):
            return True
        err = err.__cause__ or err.__context__
    return False


def _write_failure(root: Path, name: str, err: OSError) -> str:
    latest = (root / LATEST).read_text().strip() if (root / LATEST).is_file() else "none"
    free = shutil.disk_usage(root).free if root.exists() else 0
    sizes = [
        sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) for p in complete_checkpoints(root)[-1:]
    ]
    need = f"; one checkpoint needs about {sizes[0] / 2**20:.0f} MiB" if sizes else ""
    return (
        f"could not write checkpoint {root / name} ({getattr(err, 'strerror', None) or err}); "
        f"{free / 2**20:.0f} MiB free on that "
        f"disk{need}. The previous checkpoint stays latest ({latest}): free space and run the same command again"
    )


def torch_versions() -> dict[str, str]:
    import accelerate

    return {"torch": torch.__version__, "accelerate": accelerate.__version__}
