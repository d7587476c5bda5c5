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
                            f"{self.source}: duplicate key {key_path} (lines {first_line[key]} and {line}); "
                            f"a key may appear once per section: keep one of them"
                        )
                    first_line[key] = line
                self._check_unique_keys(value_node, key_path, visited)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._check_unique_keys(item, f"{path}[{i}]", visited)


def safe_load_strict(text: str, source: str) -> Any:
    """yaml.safe_load with duplicate keys refused; `source` names the text in error messages."""
    loader = StrictLoader(text)
    loader.source = source
    loader.name = source.removeprefix(
        "--config: "
    )  # marks in YAML errors name the file, not "<unicode string>"
    try:
        return loader.get_single_data()
    except yaml.YAMLError as err:
        message = " ".join(str(err).split())
        raise ConfigError(f"{source} is not valid YAML: {message}") from None
    finally:
        loader.dispose()


def read_yaml(path: Path) -> Any:
    """Parse the YAML file `path`: ConfigError if it is missing, not UTF-8 or not valid YAML."""
    if not path.is_file():
        raise ConfigError(f"--config: file not found: {path}")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ConfigError(
            f"--config: {path} is not UTF-8 text (byte {err.start}, value 0x{data[err.start]:02x}, "
            f"line {line}); save the file as UTF-8"
        ) from None
    return safe_load_strict(text, f"--config: {path}")
