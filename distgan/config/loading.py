"""Reading a config: YAML file + dotted KEY=VALUE overrides -> a validated, frozen ExperimentConfig.

`load_config` is the only way from text to a config; `override` derives a new config from a
complete one (launcher settings, --debug limits, benchmarks) through the same parsing and
validation, so no code path ever writes to a config after it was checked.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from distgan.config.sections import ConfigError, ExperimentConfig
from distgan.config.strict_yaml import read_yaml, safe_load_strict
from distgan.errors import brief


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is list:
        return f"a list of {_type_name(get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Return `value` as type `tp`, or raise ConfigError naming `key`."""
    origin = get_origin(tp)
    if origin is Literal:
        choices = get_args(tp)
        if value is False and "no" in choices:  # YAML 1.1 reads a bare `no` (or off) as false
            value = "no"
        if value not in choices:
            raise ConfigError(f"{key}: must be {_type_name(tp)}, got {brief(value)}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key}: must be {_type_name(tp)}, got {brief(value)}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: must be {_type_name(tp)}, got {brief(value)}")
        return [_coerce(v, get_args(tp)[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: must be true or false, got {brief(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: must be an integer, got {brief(value)}")
    if tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise ConfigError(f"{key}: must be a number, got {brief(value)}")
        if not math.isfinite(number):  # nan/inf pass every range check written as a comparison
            raise ConfigError(f"{key}: must be a finite number, got {brief(value)}")
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: must be a string, got {brief(value)}")
    raise TypeError(f"unsupported config type {tp} at {key}")  # a bug in this module


def upgrade_old_spellings(raw: dict[str, Any]) -> dict[str, Any]:
    """`raw` with older spellings that keep their meaning written the current way (a new dict):
    objective.loss=wgan-gp is loss wasserstein with penalty gp. Config files, overrides and the
    config.yaml of older runs all pass through here, so they load and resume as before."""
    objective = raw.get("objective") if isinstance(raw, dict) else None
    if not (isinstance(objective, dict) and objective.get("loss") == "wgan-gp"):
        return raw
    penalty = objective.get("penalty", "none")
    if penalty not in ("none", "gp"):
        raise ConfigError(
            f"objective.loss: wgan-gp means loss wasserstein with penalty gp, but objective.penalty is "
            f"{penalty!r}; valid: objective.loss=wasserstein with objective.penalty={penalty}"
        )
    return {**raw, "objective": {**objective, "loss": "wasserstein", "penalty": "gp"}}


def _build(cls: type, raw: dict[str, Any], prefix: str) -> Any:
    """Build dataclass `cls` from a nested dict, rejecting unknown keys."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix or 'config'}: must be a mapping of keys, got {brief(raw)}")
    hints = typing.get_type_hints(cls)
    fields_by_name = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(str(name) for name in set(raw) - set(fields_by_name))
    if unknown:
        where = f"{prefix}." if prefix else ""
        name = unknown[0] if len(unknown[0]) <= 60 else brief(unknown[0])
        raise ConfigError(
            f"unknown key {where}{name}; valid keys{' in ' + prefix if prefix else ''}: "
            f"{', '.join(sorted(fields_by_name))}"
        )
    kwargs = {}
    for name, value in raw.items():
        key = f"{prefix}.{name}" if prefix else name
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value or {}, key)
        else:
            kwargs[name] = _coerce(value, tp, key)
    return cls(**kwargs)


def _parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override {brief(text)}: expected KEY=VALUE, e.g. train.steps=200")
    key, _, value = text.partition("=")
    key = key.strip()
    if not key:
        raise ConfigError(f"override {brief(text)}: empty key; expected KEY=VALUE")
    return key.split("."), safe_load_strict(value, f"override {brief(text)}") if value.strip() else ""


def _apply_override(raw: dict[str, Any], path: list[str], value: Any) -> None:
    node = raw
    for part in path[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(path)}: {part} is not a section")
        node = child
    node[path[-1]] = value


def load_config(path: str | Path | None, overrides: list[str] = (), world_size: int = 1) -> ExperimentConfig:
    """Load YAML `path` (None = all defaults), apply overrides, validate. Raises ConfigError."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        raw = read_yaml(path) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"--config: {path} must hold a mapping of sections, got {type(raw).__name__}")
    for text in overrides:
        key_path, value = _parse_override(text)
        _apply_override(raw, key_path, value)
    config = _build(ExperimentConfig, upgrade_old_spellings(raw), "")
    return config.validate(world_size=world_size)


def config_from_dict(raw: dict[str, Any], world_size: int = 1) -> ExperimentConfig:
    """Rebuild a validated config from `to_dict()` output (e.g. a run's config.yaml)."""
    return _build(ExperimentConfig, upgrade_old_spellings(raw), "").validate(world_size=world_size)


def config_from_file(path: Path, source: str) -> ExperimentConfig:
    """A resolved config.yaml that distgan did not just write (an export, a Hub snapshot, a checkpoint)
    through the same strict parsing as --config; every error names the file. `source`: its role."""
    raw = read_yaml(path, source)
    try:
        return config_from_dict(raw if raw is not None else {})
    except ConfigError as err:
        raise ConfigError(f"{source}: {path}: {err}") from None


def override(cfg: ExperimentConfig, overrides: list[str], world_size: int = 1) -> ExperimentConfig:
    """A new validated config: `cfg` with KEY=VALUE `overrides` applied (cfg itself is unchanged)."""
    if not overrides:
        return cfg
    raw = cfg.to_dict()
    for text in overrides:
        key_path, value = _parse_override(text)
        _apply_override(raw, key_path, value)
    return config_from_dict(raw, world_size=world_size)
