"""Transfer learning: seed a fresh run's networks from another run (`train.init_from`) and freeze
D's first blocks (`train.freeze_d`, FreezeD: Mo et al. 2020).

`init_from` names a run directory (its latest checkpoint), one checkpoint directory, an exported
folder (`python -m distgan.export`) or a Hub id `owner/name` of one. A checkpoint gives G, D and the
EMA generator; an export holds the EMA generator only, so G and its EMA start from it and D is
freshly initialised. Everything else starts afresh: optimizers, step 0, images seen, ADA's p. The
source must be the same `model.arch`, and every tensor is checked against the networks this run
built before any is loaded: a mismatch names the tensor and both shapes. `init_from` only seeds a
fresh run: a run that resumes from its own checkpoint keeps the weights it has (and the record of
where they began); resuming a checkpoint that began elsewhere with another `init_from` is refused.

Freezing happens before the networks are wrapped: the frozen parameters have requires_grad off, so
D's optimizer never holds them and DDP's reducer never waits for their gradients (no
find_unused_parameters); the penalties still differentiate D with respect to its input through them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from safetensors.torch import load_file
from torch import nn

import distgan.run_layout as run_layout
from distgan.checkpoint import read_meta, resolve_checkpoint
from distgan.config import ExperimentConfig, ModelConfig, TrainConfig
from distgan.errors import CheckpointError, UserError, brief
from distgan.generation import load_run_config, tensor_shapes
from distgan.hub import WEIGHTS, download, is_export_dir, is_repo_id
from distgan.registry import ARCHITECTURES

KEY = "train.init_from"
VALID = "valid: a run directory, a checkpoint directory, an exported folder, or a Hub id owner/name"


class TransferError(UserError):
    """train.init_from or train.freeze_d cannot be applied: the message names the key and the fix."""


@dataclass(frozen=True)
class Source:
    """The weights `train.init_from` names, resolved to files (nothing loaded yet)."""

    given: str  # what train.init_from says
    kind: str  # checkpoint | export | hub
    config: ExperimentConfig  # the source's resolved config
    files: dict[str, Path]  # generator / discriminator / generator_ema -> weights file
    checkpoint: Path | None = None
    step: int | None = None  # G steps the source had trained, when known
    revision: str | None = None  # the Hub commit of the snapshot

    def record(self) -> dict[str, Any]:
        """meta.json's `init_from` (the model card reads it)."""
        return {
            "source": self.given,
            "kind": self.kind,
            "checkpoint": str(self.checkpoint) if self.checkpoint else None,
            "step": self.step,
            "revision": self.revision,
        }


def open_source(init_from: str) -> Source:
    """Resolve `init_from` (downloading a Hub id through the cache); TransferError if it is none of
    the four kinds, or its config cannot be read."""
    try:
        path, revision, kind = Path(init_from), None, "export"
        if is_repo_id(init_from):
            path, kind = download(init_from), "hub"
            revision = path.name if path.parent.name == "snapshots" else None
        if is_export_dir(path):
            weights = path / WEIGHTS  # the EMA generator (or the raw one, exported with --no-ema)
            files = {run_layout.GENERATOR: weights, run_layout.GENERATOR_EMA: weights}
            return Source(init_from, kind, load_run_config(path), files, revision=revision)
        checkpoint = resolve_checkpoint(path)
        config, meta = load_run_config(checkpoint), read_meta(checkpoint)
    except UserError as err:
        raise TransferError(f"{KEY}: {err}; {VALID}") from None
    names = (run_layout.GENERATOR, run_layout.DISCRIMINATOR, run_layout.GENERATOR_EMA)
    files = {name: checkpoint / f"{name}.safetensors" for name in names}
    files = {name: file for name, file in files.items() if file.is_file()}
    return Source(init_from, "checkpoint", config, files, checkpoint, meta["step"])


def _shapes(path: Path) -> dict[str, list[int]]:
    try:
        return tensor_shapes(path)
    except CheckpointError as err:
        raise TransferError(f"{KEY}: {err}") from None


def _model_differences(source: ExperimentConfig, model: ModelConfig, sample_shape: tuple) -> str:
    """' (the configs differ in ...)' naming what explains a shape mismatch, or ''."""
    theirs, ours = dataclasses.asdict(source.model), dataclasses.asdict(model)
    keys = [f"model.{k}: {theirs[k]!r} there, {ours[k]!r} here" for k in ours if theirs.get(k) != ours[k]]
    if tuple(source.sample_shape) != tuple(sample_shape):
        keys.append(f"sample shape: {list(source.sample_shape)} there, {list(sample_shape)} here")
    return f" (the configs differ in {'; '.join(keys[:4])})" if keys else ""


def check_source(
    source: Source, generator: nn.Module, discriminator: nn.Module, model: ModelConfig, sample_shape
) -> None:
    """TransferError unless the source is the same model.arch and each of its weights files holds
    exactly the tensors, and shapes, of the network it seeds (the EMA file: G's). Reads shapes only."""
    if source.config.model.arch != model.arch:
        raise TransferError(
            f"{KEY}: {source.given} is a model.arch={source.config.model.arch} run, this run is "
            f"model.arch={model.arch}; valid: a source trained with model.arch={model.arch}"
        )
    hint = _model_differences(source.config, model, sample_shape)
    for name, path in source.files.items():
        network = discriminator if name == run_layout.DISCRIMINATOR else generator
        found = _shapes(path)
        expected = {key: list(t.shape) for key, t in network.state_dict().items()}
        for key in [*expected, *sorted(found.keys() - expected.keys())]:  # in the network's order
            there, here = found.get(key), expected.get(key)
            if there != here:
                name_key = key if len(key) <= 80 else brief(key, 80)
                have = f"has shape {there} in {path}" if there is not None else f"is missing from {path}"
                want = (
                    f"this run's network expects {here}"
                    if here is not None
                    else "this run's network has none"
                )
                raise TransferError(
                    f"{KEY}: {name} tensor {name_key} {have}, {want}{hint}; "
                    "valid: a source with this run's model settings"
                )


def resumed_record(checkpoint: Path, init_from: str | None) -> dict[str, Any] | None:
    """Where a resumed run's weights began (its meta.json); TransferError when `init_from` would
    seed a run that already has weights of another origin."""
    saved = yaml.safe_load((checkpoint / run_layout.CONFIG).read_text()) or {}
    began_from = (saved.get("train") or {}).get("init_from")
    if init_from is not None and init_from != began_from:
        raise TransferError(
            f"{KEY}={init_from}: {checkpoint} would be resumed, and its run began from "
            f"{began_from or 'scratch'}; init_from only seeds a fresh run: use a new train.out_dir, or "
            "--resume never --overwrite to set the old run aside"
        )
    return read_meta(checkpoint).get("init_from")


@dataclass(frozen=True)
class Seed:
    """What train.init_from gives this run: the source to load (a fresh run) and meta.json's record."""

    source: Source | None
    record: dict[str, Any] | None

    def load(
        self, generator: nn.Module, discriminator: nn.Module, model: ModelConfig, sample_shape, say
    ) -> None:
        """Check every source file against the networks, then load G and D (before they are wrapped:
        every rank loads the same files, and DeepSpeed's master weights start from them)."""
        if self.source is None:
            return
        check_source(self.source, generator, discriminator, model, sample_shape)
        files = self.source.files
        generator.load_state_dict(load_file(str(files[run_layout.GENERATOR])))
        if run_layout.DISCRIMINATOR in files:
            discriminator.load_state_dict(load_file(str(files[run_layout.DISCRIMINATOR])))
            at = f" (step {self.source.step})" if self.source.step is not None else ""
            kept = "G, D and EMA" if run_layout.GENERATOR_EMA in files else "G and D"
            say(f"{KEY}: {kept} weights from {self.source.checkpoint}{at}; training starts at step 0")
        else:
            say(
                f"{KEY}: {self.source.given} is an exported generator: G and its EMA start from its "
                "weights; D starts freshly initialised (an export holds no discriminator)"
            )

    def load_ema(self, ema_generator: nn.Module | None) -> None:
        """The source's EMA weights into this run's EMA generator (a copy of the seeded G until now;
        it stays that copy when the source kept no EMA)."""
        if self.source is None or ema_generator is None:
            return
        weights = self.source.files.get(run_layout.GENERATOR_EMA)
        if weights is not None:
            ema_generator.load_state_dict(load_file(str(weights)))


def plan_seed(train: TrainConfig, resume_from: Path | None) -> Seed:
    """The seed of this run: nothing, the source of a fresh run, or a resumed run's record."""
    if resume_from is not None:
        return Seed(None, resumed_record(resume_from, train.init_from))
    if train.init_from is None:
        return Seed(None, None)
    source = open_source(train.init_from)
    return Seed(source, source.record())


def freeze_discriminator_blocks(discriminator: nn.Module, arch: str, count: int) -> None:
    """requires_grad off for the first `count` blocks of D (from the image input inwards)."""
    if count == 0:
        return
    blocks = ARCHITECTURES.get(arch).discriminator_blocks(discriminator)
    if count > len(blocks):
        raise TransferError(
            f"train.freeze_d: model.arch={arch}'s discriminator has {len(blocks)} blocks here; "
            f"valid: 0..{len(blocks)}, got {count}"
        )
    for block in blocks[:count]:
        block.requires_grad_(False)
