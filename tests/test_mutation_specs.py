"""`scripts/mutation_check.py --specs`: an external set of planted bugs, judged by the same rules.

Run on a tiny stand-in repository (one module, one test file) so the three pytest runs it takes
(baseline, canary, one mutation) cost seconds, not the real suite's minutes.
"""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "mutation_check.py"


@pytest.fixture
def mutation_check(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("mutation_check_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    repo = tmp_path / "repo"
    (repo / "tinypkg").mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / "tinypkg" / "__init__.py").write_text("")
    (repo / "tinypkg" / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    # the test imports whatever `tinypkg` comes first on PYTHONPATH: the copy, if the script is honest
    (repo / "tests" / "test_calc.py").write_text(
        "from tinypkg.calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    )
    monkeypatch.setattr(module, "REPO", repo)
    monkeypatch.setenv("PYTHONPATH", "")  # nothing else named tinypkg to fall back on
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # the stand-in needs no plugins: seconds
    return module, repo


def write_specs(tmp_path, specs) -> Path:
    path = tmp_path / "specs.json"
    path.write_text(json.dumps(specs))
    return path


def test_specs_caught_survived_and_not_applicable(mutation_check, tmp_path, capsys):
    module, repo = mutation_check
    calc = {"file": "tinypkg/calc.py", "tests": ["tests/test_calc.py"]}
    specs = write_specs(
        tmp_path,
        [
            {"name": "add-subtracts", "old": "return a + b", "new": "return a - b", **calc},
            # an equivalent mutant, run against the default (the whole fast suite)
            {"name": "equivalent", "file": "tinypkg/calc.py", "old": "return a + b", "new": "return b + a"},
            # the snippet moved away: must count as NOT caught, never silently skipped
            {"name": "moved-away", "old": "return a * b", "new": "return a / b", **calc},
        ],
    )
    assert module.load_specs(specs)[1].tests == ("tests",)
    assert module.main(["--specs", str(specs)]) == 0
    out = capsys.readouterr().out
    assert "baseline: 1 passed" in out
    canary = next(line for line in out.splitlines() if line.startswith("canary (must fail): "))
    assert "error" in canary or "failed" in canary
    assert "| add-subtracts | tinypkg/calc.py |" in out and out.count("| caught |") == 1
    assert "| equivalent | tinypkg/calc.py |" in out and out.count("| SURVIVED |") == 1
    assert "| moved-away | tinypkg/calc.py |" in out and out.count("| not applicable |") == 1
    assert "score: 1/3" in out
    assert (repo / "tinypkg" / "calc.py").read_text().count("a + b") == 1  # the repository itself untouched


@pytest.mark.parametrize(
    "content, words",
    [
        ("{not json", "cannot read a JSON list"),
        ("[]", "non-empty JSON list"),
        ('[{"name": "x", "file": "f.py", "old": "a"}]', "lacks ['new']"),
        ('[{"name": "x", "file": "f.py", "old": "a", "new": "b", "test": []}]', "unknown keys ['test']"),
        ('[{"name": "x", "file": "f.py", "old": "a", "new": "b", "tests": "t.py"}]', "tests must be a list"),
    ],
)
def test_bad_specs_file_is_one_line_and_exit_2(mutation_check, tmp_path, capsys, content, words):
    module, _ = mutation_check
    path = tmp_path / "bad.json"
    path.write_text(content)
    assert module.main(["--specs", str(path), "--no-baseline"]) == 2
    err = capsys.readouterr().err
    assert words in err and str(path) in err and len(err.strip().splitlines()) == 1
