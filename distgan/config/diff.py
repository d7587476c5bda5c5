"""What changed between a checkpoint's config and the one a resume runs with, and may it change.

A resume may change how long and how visibly a run goes on, and its learning rates; anything
that changes what is being trained (model, data, objective, seed, batch, precision) makes the
checkpoint's state and the new config disagree, so it needs --allow-config-change.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from distgan.config.loading import upgrade_old_spellings
from distgan.config.sections import AUGMENT_DEFAULT_OPS

# Keys a resume may change freely (fnmatch patterns over dotted keys).
RESUMABLE = (
    "train.steps",
    "train.out_dir",
    "train.detect_anomaly",
    "train.on_nonfinite",
    "train.max_rollbacks",
    "train.rollback_lr_factor",
    "log.*",
    "checkpoint.every",
    "checkpoint.keep_last",
    "eval.*",
    "optim.d.lr",
    "optim.g.lr",
    "data.num_workers",  # the batches do not depend on it (data tests prove it)
    "distributed.timeout_s",
    "distributed.stop_check_s",
)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def _same_ops_as_null(flat: dict[str, Any]) -> dict[str, Any]:
    """augment.ops listing DiffAugment's default ops (older runs wrote it out) means what null does."""
    if flat.get("augment.ops") == list(AUGMENT_DEFAULT_OPS) and flat.get("augment.pipe", "none") == "none":
        return {**flat, "augment.ops": None}
    return flat


def config_changes(saved: dict[str, Any], now: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, value in the checkpoint, value now) for every leaf that differs, sorted by key.
    A key the checkpoint does not know (added in a newer distgan) counts as unchanged; an older
    spelling of the same setting (objective.loss=wgan-gp, augment.ops written out) is no change."""
    before = _same_ops_as_null(flatten(upgrade_old_spellings(saved)))
    after = _same_ops_as_null(flatten(now))
    return [(k, before[k], after[k]) for k in sorted(after) if k in before and before[k] != after[k]]


def is_resumable(key: str) -> bool:
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in RESUMABLE)


def describe(changes: list[tuple[str, Any, Any]]) -> str:
    return "; ".join(f"{key}: {old!r} -> {new!r}" for key, old, new in changes)


def schedule_shift(changes: list[tuple[str, Any, Any]], lr_decay_start: float) -> str:
    """'' or why a resume that changes train.steps under an lr decay differs from a straight run:
    the decay is a fraction of train.steps, so it now starts and ends at other steps."""
    steps = {key: (old, new) for key, old, new in changes}.get("train.steps")
    if steps is None or lr_decay_start >= 1.0:
        return ""
    old, new = steps
    return (
        f"the lr decay (optim.lr_decay_start={lr_decay_start}) now falls from step "
        f"{round(lr_decay_start * new)} to {new} instead of {round(lr_decay_start * old)} to {old}: "
        f"this run will differ from one trained with train.steps={new} from the start"
    )
