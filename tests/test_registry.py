"""The registry every extension point uses: names, errors, built-ins loaded on first lookup."""

from __future__ import annotations

import sys

import pytest

from distgan.errors import UserError
from distgan.registry import EXTENSION_POINTS, Registry, UnknownName


def test_registered_entry_is_found_and_unknown_name_lists_valid_ones():
    table = Registry("model.arch", ())
    table.register("one", 1)

    @table.register("two")
    def two():
        return 2

    assert table.get("one") == 1 and table.get("two") is two
    assert table.names() == ("one", "two") and "one" in table and "three" not in table
    with pytest.raises(UnknownName) as err:
        table.get("three")
    assert isinstance(err.value, UserError)
    assert str(err.value) == "model.arch: unknown value 'three'; valid: one, two"


def test_a_name_registered_twice_with_another_entry_is_a_bug():
    table = Registry("k", ())
    table.register("a", 1)
    table.register("a", 1)  # the same entry again (a module imported twice) is harmless
    with pytest.raises(ValueError, match="registered twice"):
        table.register("a", 2)
    table.unregister("a")
    assert table.names() == ()


def test_builtins_are_imported_on_first_lookup(tmp_path, monkeypatch):
    (tmp_path / "probe_table.py").write_text(
        "from distgan.registry import Registry\nPROBE = Registry('probe.key', ('probe_builtins',))\n"
    )
    (tmp_path / "probe_builtins.py").write_text(
        "from probe_table import PROBE\nPROBE.register('shipped', 'yes')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import probe_table

    assert "probe_builtins" not in sys.modules
    assert probe_table.PROBE.get("shipped") == "yes"
    assert "probe_builtins" in sys.modules


def test_every_extension_point_names_its_config_key():
    assert set(EXTENSION_POINTS) == {
        "model.arch", "objective.loss", "objective.penalty", "data.source", "eval.metrics", "log.trackers",
    }  # fmt: skip
