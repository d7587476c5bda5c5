"""The package's shape: arrows run one way, and the pure layers stay pure (ARCHITECTURE.md).

The import graph is read from the source with `ast` (every import statement, also those inside
functions), so a circle hidden in a function body is still a circle.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "distgan"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path) -> set[str]:
    """Every module name an import statement in `path` names (absolute; relative ones resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return names


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported in imported_names(path):
            # `from distgan.data import Batch` depends on distgan.data (the package), not on a module
            # named distgan.data.Batch: keep the longest prefix that is a module of ours.
            parts = imported.split(".")
            for cut in range(len(parts), 0, -1):
                candidate = ".".join(parts[:cut])
                if candidate in modules:
                    if candidate != name:
                        targets.add(candidate)
                    break
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules (first == last), or None. A package's __init__ is a
    module like any other: `from distgan.data import X` is an arrow to distgan/data/__init__.py."""
    full = {name: set(targets) for name, targets in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(full[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(full):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [m for m in graph if m == start or m.startswith(start + ".")]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph[node])
    return seen


def test_the_import_graph_is_read_from_every_module():
    graph = import_graph()
    assert {"distgan.trainer", "distgan.distributed.zero", "distgan.config.loading"} <= set(graph)
    assert "distgan.distributed.backend" in graph["distgan.distributed.zero"]
    assert "distgan.checkpoint" in graph["distgan.trainer"]


def test_no_module_imports_in_a_circle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_circle_finder_finds_a_planted_circle():
    graph = import_graph()
    graph["distgan.config.sections"] = graph["distgan.config.sections"] | {"distgan.trainer"}
    assert find_cycle(graph) is not None


@pytest.mark.parametrize(
    "layer", ["distgan.models", "distgan.objectives", "distgan.metrics", "distgan.augment"]
)
def test_pure_layers_import_neither_frameworks_nor_the_data_stack(layer):
    graph = import_graph()
    ours = reachable(graph, layer)
    assert "distgan.data" not in ours and not any(m.startswith("distgan.data.") for m in ours), ours
    assert not any(m.startswith("distgan.distributed") for m in ours), ours
    for module in ours:
        path = next(p for p in PACKAGE.rglob("*.py") if module_name(p) == module)
        external = {name.split(".")[0] for name in imported_names(path)}
        assert not external & {"accelerate", "deepspeed"}, (
            f"{module} imports {external & {'accelerate', 'deepspeed'}}"
        )


def test_nothing_in_the_package_imports_the_benchmarks():
    graph = import_graph()
    importers = {m for m, targets in graph.items() if any(t.startswith("distgan.bench") for t in targets)}
    assert all(m.startswith("distgan.bench") for m in importers), importers


# ARCHITECTURE.md's layers. A module imports only from lower layers, or within its own package.
LAYERS = {
    0: ["errors", "files", "run_layout"],
    1: ["registry"],
    2: ["config"],
    3: ["distributed", "checkpoint", "tracking", "data", "metrics", "models", "objectives", "augment", "ema",
        "grids", "host_memory", "train_state", "hub", "model_card", "sampling"],
    4: ["step", "faults", "run_directory", "generation", "memory_check"],
    5: ["upkeep", "transfer"],
    6: ["trainer"],
    7: ["train", "sample", "evaluate", "export", "bench"],
    8: ["cli"],
}  # fmt: skip
ENTRY_POINTS_INSIDE_PACKAGES = {
    "distgan.data.prepare": 7,  # `python -m distgan.data.prepare`
    "distgan": 7,  # the package root re-exports the Python API (load_generator)
}
LAYER_OF = {name: layer for layer, names in LAYERS.items() for name in names}


def layer_of(module: str) -> int | None:
    if module in ENTRY_POINTS_INSIDE_PACKAGES:
        return ENTRY_POINTS_INSIDE_PACKAGES[module]
    return LAYER_OF.get(module.split(".")[1]) if module.count(".") else None


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    wrong = []
    for module, targets in graph.items():
        mine = layer_of(module)
        for target in targets:
            if target == "distgan" or module.split(".")[:2] == target.split(".")[:2]:
                continue  # the package root, or within one package
            theirs = layer_of(target)
            if mine is None or theirs is None or theirs >= mine:
                wrong.append(f"{module} (layer {mine}) -> {target} (layer {theirs})")
    return wrong


def test_every_module_has_a_layer_and_imports_only_from_lower_layers():
    graph = import_graph()
    assert not [m for m in graph if m != "distgan" and layer_of(m) is None]
    assert not layer_violations(graph)


def test_the_layer_rule_catches_a_planted_same_layer_import():
    graph = import_graph()
    graph["distgan.faults"] = graph["distgan.faults"] | {"distgan.run_directory"}  # both layer 4
    graph["distgan.models.dcgan"] = graph["distgan.models.dcgan"] | {"distgan.data"}  # both layer 3
    assert len(layer_violations(graph)) == 2


# What a module's docstring claims about its imports, as words the check understands.
CLAIM_WORDS = {
    "accelerate": "accelerate",
    "deepspeed": "deepspeed",
    "distgan's trainer": "distgan.trainer",
    "backends": "distgan.distributed",
    "objectives": "distgan.objectives",
    "it": None,  # "models, objectives and metrics never import it": tested above
}


def import_claims(path: Path) -> list[tuple[str, set[str]]]:
    """(claim, forbidden-or-allowed names) for each import claim of the module docstring."""
    text = " ".join((ast.get_docstring(ast.parse(path.read_text())) or "").split())
    claims = []
    for match in re.finditer(r"[Ii]mports nothing from distgan(?: but `(\w+)`)?", text):
        claims.append(("only", {"distgan.errors"} if match.group(1) == "errors" else set()))
    for match in re.finditer(r"[Ii]mports torch (?:and config )?only", text):
        claims.append(("only", {"distgan.config"} if "config" in match.group(0) else set()))
        claims.append(("external", {"torch"}))
    for match in re.finditer(r"never imports? ([^.;:(]+)|no (\w+) import", text):
        clause = re.split(r",\s*so\b", match.group(1) or match.group(2))[0]
        words = re.split(r", | or | and ", clause.strip())
        for word in words:
            assert word in CLAIM_WORDS, f"{path}: the import claim {match.group(0)!r} names {word!r}"
            if CLAIM_WORDS[word]:
                claims.append(("never", {CLAIM_WORDS[word]}))
    return claims


def claim_violations(path: Path) -> list[str]:
    own = ".".join(module_name(path).split(".")[:2])
    names = imported_names(path)
    ours = {n for n in names if n.startswith("distgan") and not n.startswith(own)} - {"distgan"}
    external = {n.split(".")[0] for n in names if not n.startswith("distgan")} - set(sys.stdlib_module_names)
    external -= {"__future__"}
    wrong = []
    for kind, allowed in import_claims(path):
        if kind == "only" and any(not any(n.startswith(a) for a in allowed) for n in ours):
            wrong.append(f"{path.name} claims it imports only {allowed or 'nothing'} of distgan: {ours}")
        if kind == "external" and external - allowed:
            wrong.append(f"{path.name} claims torch only, imports {external}")
        if kind == "never" and any(n == a or n.startswith(a + ".") for a in allowed for n in names):
            wrong.append(f"{path.name} claims it never imports {allowed}")
    return wrong


def test_docstring_import_claims_are_true():
    paths = sorted(PACKAGE.rglob("*.py"))
    assert sum(bool(import_claims(p)) for p in paths) >= 8  # the claims are found at all
    assert not [v for p in paths for v in claim_violations(p)]


def test_a_false_import_claim_is_caught(tmp_path):
    fake = PACKAGE / "models" / "_planted_claim.py"
    try:
        fake.write_text('"""Imports torch only."""\nimport numpy\nfrom distgan.data import Batch\n')
        assert len(claim_violations(fake)) == 2
    finally:
        fake.unlink()
