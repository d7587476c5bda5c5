"""Named tables of components: the one way a name in a config becomes code.

Every extension point (architectures, adversarial losses, penalties, data sources, metrics,
trackers) is a `Registry` declared here. The package that implements the built-in entries
registers them when it is imported; a user (or a test) adds an entry from one file of its own:

    from distgan.registry import ARCHITECTURES
    ARCHITECTURES.register("my_arch", MyArchitecture())

The config's allowed values are the registries' names, so a registered name is accepted by the
config loader and `--help-config` at once. A registry imports its built-in modules the first
time it is asked for a name (by module name, through importlib): this module therefore imports
nothing from distgan but `errors`, and the arrows of ARCHITECTURE.md still run one way.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Generic, TypeVar

from distgan.errors import UserError

Entry = TypeVar("Entry")


class UnknownName(UserError, KeyError):
    """A config value that names no registered entry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class Registry(Generic[Entry]):
    """Entries by name for the config key `key`; `builtins` are the modules that register the
    entries distgan ships, imported on first lookup."""

    def __init__(self, key: str, builtins: tuple[str, ...]):
        self.key = key
        self._builtins = builtins
        self._loaded = False
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, entry: Entry | None = None):
        """Add `entry` under `name` (or use as a decorator: `@REGISTRY.register("name")`).
        A name registered twice is a programming error, not a user's: it raises ValueError."""

        def add(value: Entry) -> Entry:
            if name in self._entries and self._entries[name] is not value:
                raise ValueError(f"{self.key}: {name!r} is registered twice")
            self._entries[name] = value
            return value

        return add if entry is None else add(entry)

    def unregister(self, name: str) -> None:
        """Remove `name` (tests that register a temporary entry clean up with this)."""
        self._entries.pop(name, None)

    def _load_builtins(self) -> None:
        if not self._loaded:
            self._loaded = True  # first: a built-in module may look names up while it registers
            for module in self._builtins:
                importlib.import_module(module)

    def names(self) -> tuple[str, ...]:
        """Every registered name, built-ins first (in registration order)."""
        self._load_builtins()
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> Entry:
        """The entry for `name`; an unknown name is one line naming the key and the valid names."""
        if name not in self.names():
            valid = ", ".join(self.names())
            raise UnknownName(f"{self.key}: unknown value {str(name)[:60]!r}; valid: {valid}")
        return self._entries[name]

    def items(self) -> list[tuple[str, Entry]]:
        self._load_builtins()
        return list(self._entries.items())


def registry(key: str, *builtins: str) -> Registry:
    return Registry(key, builtins)


# The extension points. Each names the config key it serves and the modules with its built-ins.
ARCHITECTURES: Registry = registry("model.arch", "distgan.models")
LOSSES: Registry = registry("objective.loss", "distgan.objectives")
PENALTIES: Registry = registry("objective.penalty", "distgan.objectives")
SOURCES: Registry = registry("data.source", "distgan.data")
METRICS: Registry = registry("eval.metrics", "distgan.metrics")
TRACKERS: Registry = registry("log.trackers", "distgan.tracking")

EXTENSION_POINTS: dict[str, Registry] = {
    r.key: r for r in (ARCHITECTURES, LOSSES, PENALTIES, SOURCES, METRICS, TRACKERS)
}

__all__ = [
    "ARCHITECTURES",
    "EXTENSION_POINTS",
    "LOSSES",
    "METRICS",
    "PENALTIES",
    "Registry",
    "SOURCES",
    "TRACKERS",
    "UnknownName",
]
