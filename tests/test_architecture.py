"""The floor plan of the package, checked from the code's own imports (function-local ones included), so it
cannot erode silently: the domain is the floor and imports nothing above it, the planner never talks to the
backend, nothing below the command line imports it, and no two modules import each other round a circle."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "reconciler"

#: What each package may import from `reconciler` besides itself (the floors below it).
ALLOWED: dict[str, set[str]] = {
    "domain": set(),
    "diagnostics": set(),
    "collector": set(),
    "config": {"domain", "diagnostics", "collector"},
    "plan": {"domain", "config", "diagnostics", "collector"},
    "backend": {"domain", "config", "diagnostics", "collector"},
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def imports_of(module: str) -> set[str]:
    """The reconciler modules `module` imports anywhere in its code (top level or inside a function)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        found |= {name for name in names if name in MODULES and name != module}
    return found


def package(module: str) -> str:
    """`reconciler.plan.planner` -> `plan`; `reconciler.diagnostics` -> `diagnostics`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


GRAPH = {module: imports_of(module) for module in MODULES}


def test_the_graph_is_read_at_all() -> None:
    assert "reconciler.domain.rules" in GRAPH["reconciler.plan.planner"]
    assert "reconciler.cli.plan" in GRAPH["reconciler.cli.apply"]          # a function-local import is seen too


@pytest.mark.parametrize("floor", sorted(ALLOWED))
def test_a_floor_imports_nothing_above_it(floor: str) -> None:
    allowed = ALLOWED[floor] | {floor}
    upward = sorted(f"{m} -> {t}" for m, targets in GRAPH.items() if package(m) == floor
                    for t in targets if package(t) not in allowed)
    assert upward == [], upward


def test_nothing_below_the_command_line_imports_it() -> None:
    users = sorted(f"{m} -> {t}" for m, targets in GRAPH.items() for t in targets
                   if package(t) == "cli" and package(m) not in ("cli", "__main__"))
    assert users == [], users


def test_only_the_command_line_imports_the_orchestrator() -> None:
    """`pipeline` sits right under the commands and over apply, reports and importers: they must not reach up to it
    (the runbook walk took its `Refused` from there; it lives with the apply's other checks now)."""
    users = sorted(f"{m} -> {t}" for m, targets in GRAPH.items() for t in targets
                   if t == "reconciler.pipeline" and package(m) not in ("cli", "__main__"))
    assert users == [], users


def test_no_modules_import_each_other_round_a_circle() -> None:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:                  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    assert circles == [], circles


def _error_classes() -> dict[str, list[str]]:
    """Exception classes defined in the package (a base is a builtin exception or one of these, by name), by name:
    the modules that define each."""
    classes: list[tuple[str, list[str], str]] = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = [b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else ""
                         for b in node.bases]
                classes.append((node.name, bases, module))
    errors = {name for name, obj in vars(builtins).items() if isinstance(obj, type) and issubclass(obj, BaseException)}
    grown = True
    while grown:
        grown = False
        for name, bases, _ in classes:
            if name not in errors and any(base in errors for base in bases):
                errors.add(name)
                grown = True
    where: dict[str, list[str]] = {}
    for name, bases, module in classes:
        if any(base in errors for base in bases):
            where.setdefault(name, []).append(module)
    return where


def test_each_error_name_has_one_meaning() -> None:
    """One name per meaning (issue 12): the rules' refusals (`NotPermitted`, `Missing`) are not the client's HTTP
    errors (`backend.errors.Forbidden`, `NotFound`), so no two modules define an exception of the same name."""
    where = _error_classes()
    assert where["NotPermitted"] == ["reconciler.domain.rules"] and where["Missing"] == ["reconciler.domain.rules"]
    assert where["Forbidden"] == ["reconciler.backend.errors"] and where["NotFound"] == ["reconciler.backend.errors"]
    assert {name: modules for name, modules in where.items() if len(modules) > 1} == {}
