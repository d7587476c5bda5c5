"""The package's shape: arrows run one way, and the pure layers stay pure (ARCHITECTURE.md).

The import graph is read from the source with `ast` (every import statement, also those inside
functions), so a circle hidden in a function body is still a circle.
"""

from __future__ import annotations

import ast
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


CONCERNS = [
    "distributed",
    "checkpoint",
    "tracking",
    "data",
    "metrics",
    "models",
    "objectives",
    "ema",
    "grids",
]
CONCERNS += ["host_memory", "augment"]
ASSEMBLY_AND_ENTRIES = [
    "trainer",
    "faults",
    "run_directory",
    "generation",
    "train",
    "sample",
    "evaluate",
    "bench",
]
ASSEMBLY_AND_ENTRIES += ["hub", "model_card", "export", "sampling"]


def concern_of(module: str) -> str | None:
    part = module.split(".")[1] if module.count(".") else None
    return part if part in CONCERNS else None


def test_concerns_import_neither_each_other_nor_upwards():
    """ARCHITECTURE.md's layers: the trainer wires the concerns; they never reach for each other."""
    wrong = []
    for module, targets in import_graph().items():
        mine = concern_of(module)
        if mine is None or module == "distgan.data.prepare":  # data.prepare is an entry point
            continue
        for target in targets:
            theirs = concern_of(target)
            upward = target.split(".")[1] in ASSEMBLY_AND_ENTRIES if target.count(".") else False
            if (theirs is not None and theirs != mine) or upward:
                wrong.append(f"{module} -> {target}")
    assert not wrong, wrong
