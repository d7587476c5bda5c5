"""The config explained from its own source: every key's type, default and comment, for
`python -m distgan.train --help-config` and `--print-config`.

The comments in sections.py are the only documentation of a field: this module reads them with
`tokenize` (the comment on the field's line, or the comment lines right above it) instead of
keeping a second copy that could drift. Types come from the annotations, defaults from the
dataclasses, and the allowed values of a key served by a registry (`distgan.registry`) from that
registry's names, so a registered architecture, loss or source is listed at once. Nothing here
validates or builds a config.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import tokenize
import typing
from dataclasses import dataclass
from typing import Any

import yaml

from distgan.config import sections
from distgan.config.loading import _type_name
from distgan.config.sections import ExperimentConfig
from distgan.registry import EXTENSION_POINTS


@dataclass(frozen=True)
class Key:
    """One leaf of the config."""

    name: str  # dotted key, e.g. optim.d.lr
    type_name: str  # e.g. "one of 'mlp', 'dcgan'"
    default: Any
    comment: str  # the field's comment in sections.py ("" when it has none)


def field_comments() -> dict[tuple[str, str], str]:
    """{(dataclass name, field name): comment} for every commented field of sections.py."""
    source = inspect.getsource(sections)
    comments: dict[int, str] = {}  # line -> comment text
    code_lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            code_lines.add(tok.start[0])
    found = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef):
            continue
        for stmt in node.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            above, line = [], stmt.lineno - 1
            while line in comments and line not in code_lines:  # comment-only lines right above
                above.insert(0, comments[line])
                line -= 1
            trailing = [comments[n] for n in range(stmt.lineno, stmt.end_lineno + 1) if n in comments]
            text = " ".join(above + trailing)
            if text:
                found[(node.name, stmt.target.id)] = text
    return found


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()


def _type_of(key: str, tp: Any) -> str:
    """The type as help shows it; a key served by a registry lists its registered names."""
    registered = EXTENSION_POINTS[key].names() if key in EXTENSION_POINTS else ()
    if not registered:
        return _type_name(tp)
    names = "one of " + ", ".join(repr(name) for name in registered)
    return f"a list, each {names}" if typing.get_origin(tp) is list else names


def keys(cls: type = ExperimentConfig, prefix: str = "") -> list[Key]:
    """Every leaf key of `cls` in declaration order, sections first to last."""
    comments = field_comments()
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        name, tp = f"{prefix}{f.name}", hints[f.name]
        if dataclasses.is_dataclass(tp):
            out += keys(tp, name + ".")
        else:
            out.append(Key(name, _type_of(name, tp), _default(f), comments.get((cls.__name__, f.name), "")))
    return out


def _yaml_value(value: Any) -> str:
    """One value as it would be written in a YAML file (flow style for lists)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9).strip()
    return text.removesuffix("...").strip()


def help_text() -> str:
    """Every key with type, default and meaning (`--help-config`)."""
    lines = ["Config keys (set them in the YAML file or as KEY=VALUE overrides):", ""]
    section = None
    for key in keys():
        top = key.name.split(".")[0]
        if top != section:
            section = top
            lines.append(f"{section}:")
        lines.append(f"  {key.name}  ({key.type_name}; default: {_yaml_value(key.default)})")
        if key.comment:
            lines.append(f"      {key.comment}")
    return "\n".join(lines)


def annotated_yaml(cfg: ExperimentConfig) -> str:
    """`cfg` as YAML, each leaf followed by its field's comment (`--print-config`); loads back as `cfg`."""
    comments = {k.name: k.comment for k in keys()}
    lines: list[str] = []

    def emit(tree: dict, prefix: str, depth: int) -> None:
        for name, value in tree.items():
            key, indent = f"{prefix}{name}", "  " * depth
            if isinstance(value, dict):
                lines.append(f"{indent}{name}:")
                emit(value, key + ".", depth + 1)
            else:
                comment = f"  # {comments[key]}" if comments.get(key) else ""
                lines.append(f"{indent}{name}: {_yaml_value(value)}{comment}")

    emit(cfg.to_dict(), "", 0)
    return "\n".join(lines)
