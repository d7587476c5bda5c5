"""Reading YAML text strictly: UTF-8 only, and a key given twice in one mapping is an error.

PyYAML's SafeLoader silently keeps the last of two equal keys, so a config with `train:` twice
runs with half of what the user wrote. Every problem here is a ConfigError naming the file (or the
override), the place and the fix. This module only parses; it knows nothing of config sections.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from distgan.config.sections import ConfigError
from distgan.errors import brief

MERGE_KEY = "<<"  # YAML merge keys may repeat; SafeLoader resolves them itself


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key repeated in one mapping, naming the key path and both lines."""

    source = "config"  # what to name in messages: the file or the override

    def construct_document(self, node: yaml.Node) -> Any:
        self._check_unique_keys(node, "", set())
        return super().construct_document(node)

    def _check_unique_keys(self, node: yaml.Node, path: str, visited: set[int]) -> None:
        if id(node) in visited:  # an alias points at a node already checked
            return
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                key_path = f"{path}.{key}" if path else str(key)
                line = key_node.start_mark.line + 1
                if key is not None and key != MERGE_KEY:
                    if key in first_line:
                        raise ConfigError(
                            f"{self.source}: duplicate key {key_path[:200]} (lines {first_line[key]} and {line}); "
                            f"a key may appear once per section: keep one of them"
                        )
                    first_line[key] = line
                self._check_unique_keys(value_node, key_path, visited)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._check_unique_keys(item, f"{path}[{i}]", visited)


def _yaml_problem(err: yaml.YAMLError) -> str:
    """What PyYAML found and where, without its snippet of the offending line (file contents)."""
    if not isinstance(err, yaml.MarkedYAMLError):
        return brief(" ".join(str(err).split()), 200)
    parts = []
    for text, mark in ((err.context, err.context_mark), (err.problem, err.problem_mark)):
        if text:
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            parts.append(f"{' '.join(text.split())[:200]}{where}")
    return "; ".join(parts) or type(err).__name__


def safe_load_strict(text: str, source: str) -> Any:
    """yaml.safe_load with duplicate keys refused; `source` names the text in error messages."""
    loader = StrictLoader(text)
    loader.source = source
    try:
        return loader.get_single_data()
    except yaml.YAMLError as err:
        raise ConfigError(f"{source} is not valid YAML: {_yaml_problem(err)}") from None
    finally:
        loader.dispose()


def read_yaml(path: Path, source: str = "--config") -> Any:
    """Parse the YAML file `path`: ConfigError if it is missing, not UTF-8 or not valid YAML.

    `source` names the file's role in messages (the flag, or the folder it came with)."""
    if not path.is_file():
        raise ConfigError(f"{source}: file not found: {path}")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ConfigError(
            f"{source}: {path} is not UTF-8 text (byte {err.start}, value 0x{data[err.start]:02x}, "
            f"line {line}); save the file as UTF-8"
        ) from None
    return safe_load_strict(text, f"{source}: {path}")
