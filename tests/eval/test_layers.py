"""eval/'s shape, read from its source: four groups, each importing only the groups before it, no cycle.

benchmarks < grading < run < report; the package root (`__init__`, `evaluate`) sits above them all.
Every import counts, those inside functions and under TYPE_CHECKING included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import memento.eval

EVAL = Path(memento.eval.__file__).resolve().parent
GROUPS = ("benchmarks", "grading", "run", "report")
TOP = {"memento.eval", "memento.eval.evaluate"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(EVAL.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(EVAL.rglob("*.py"))}


def _rank(module: str) -> int:
    parts = module.split(".")
    return GROUPS.index(parts[2]) if len(parts) > 2 and parts[2] in GROUPS else len(GROUPS)


def _imports(path: Path) -> set[str]:
    """The memento.eval modules `path` imports (``from pkg import submodule`` names the submodule)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            names = [name if name in MODULES else node.module for name in names]
        else:
            continue
        found |= {name for name in names if name == "memento.eval" or name.startswith("memento.eval.")}
    return found


GRAPH = {module: _imports(path) for module, path in MODULES.items()}


def test_every_module_is_in_a_group_or_the_root():
    assert {"memento.eval.run.runner", "memento.eval.report.summary"} <= set(MODULES)
    strays = [m for m in MODULES if _rank(m) == len(GROUPS) and m not in TOP]
    assert strays == []


def test_imports_known_modules():
    unknown = sorted({(m, i) for m, imports in GRAPH.items() for i in imports if i not in MODULES})
    assert unknown == []


def upward(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, imported) pairs where the imported module's group comes later."""
    return sorted((m, i) for m, imports in graph.items() for i in imports if _rank(i) > _rank(m))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles (a package's submodule importing the package is none: its __init__ ran first)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    found: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, set()) - {module}):
            if module.startswith(target + "."):
                continue
            if state.get(target) == 1:
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def test_no_module_imports_a_later_group():
    assert upward(GRAPH) == []


def test_no_import_cycle():
    assert cycles(GRAPH) == []


def test_the_checks_catch_what_they_look_for():
    """The old runner <-> prompted_run pair is a cycle; run importing report is upward; the real graph is read."""
    runner, prompted, summary = (
        "memento.eval.run.runner",
        "memento.eval.run.prompted_run",
        "memento.eval.report.summary",
    )
    assert cycles({runner: {prompted}, prompted: {runner}}) == [[prompted, runner, prompted]]
    assert upward({runner: {summary}, summary: set()}) == [(runner, summary)]
    assert "memento.eval.run.store" in GRAPH[runner]
    assert runner in GRAPH["memento.eval.report.outputs"]
