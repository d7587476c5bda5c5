"""The package's shape in numbers, read from the source with `ast`.

    python scripts/house_metrics.py [--json] [--package DIR]

Prints: the lines of `train()` and of trainer.py, the definitions in trainer.py, the functions and
methods outside distgan/bench that take the whole `ExperimentConfig` (a parameter annotated with
it), and how many files of the package name each extension point's registry (a new entry touches
only its own file; these are the files that hold the built-ins).
"""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "distgan"
REGISTRIES = ("ARCHITECTURES", "LOSSES", "PENALTIES", "SOURCES", "METRICS", "TRACKERS")


def use_package(path: str) -> None:
    global PACKAGE
    PACKAGE = Path(path).resolve()


def _annotation_text(node: ast.AST | None) -> str:
    return ast.unparse(node) if node is not None else ""


def functions_taking_experiment(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
            if any("ExperimentConfig" in _annotation_text(a.annotation) for a in args):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}")
    return found


def train_lines(path: Path) -> int:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef) and node.name == "train":
            return node.end_lineno - node.lineno + 1
    return 0


def registry_files() -> dict[str, int]:
    counts = dict.fromkeys(REGISTRIES, 0)
    for path in PACKAGE.rglob("*.py"):
        if path.name == "registry.py" and path.parent == PACKAGE:
            continue
        text = path.read_text()
        for name in REGISTRIES:
            if f"{name}.register" in text:
                counts[name] += 1
    return counts


def measure() -> dict:
    trainer = PACKAGE / "trainer.py"
    taking = [
        f
        for path in sorted(PACKAGE.rglob("*.py"))
        if "bench" not in path.parts
        for f in functions_taking_experiment(path)
    ]
    definitions = [
        n for n in ast.parse(trainer.read_text()).body if isinstance(n, ast.FunctionDef | ast.ClassDef)
    ]
    return {
        "train_lines": train_lines(trainer),
        "trainer_py_lines": len(trainer.read_text().splitlines()),
        "trainer_definitions": len(definitions),
        "functions_taking_experiment_config": len(taking),
        "taking_experiment_config": taking,
        "files_registering": registry_files(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--package", default=str(PACKAGE), help="the distgan package folder to measure")
    args = parser.parse_args()
    use_package(args.package)
    figures = measure()
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"train(): {figures['train_lines']} lines")
    print(f"trainer.py: {figures['trainer_py_lines']} lines, {figures['trainer_definitions']} definitions")
    print(
        f"functions outside bench/ taking ExperimentConfig: {figures['functions_taking_experiment_config']}"
    )
    for entry in figures["taking_experiment_config"]:
        print(f"  {entry}")
    print(
        "files registering built-ins: "
        + ", ".join(f"{k} {v}" for k, v in figures["files_registering"].items())
    )


if __name__ == "__main__":
    main()
