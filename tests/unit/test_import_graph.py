"""The package's import graph: no circle among its modules (lazy and type-checking
imports count too), and no module takes another module's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

import stop_tui

PACKAGE = Path(stop_tui.__file__).parent


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), plus self-imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_the_cycle_finder_finds_a_circle() -> None:
    graph = grimp.ImportGraph()
    for module in ("p", "p.a", "p.b", "p.c"):
        graph.add_module(module)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.c")
    assert cycles(graph) == []
    graph.add_import(importer="p.c", imported="p.a")
    assert cycles(graph) == [["p.a", "p.b", "p.c"]]


def test_no_import_circle_among_the_package_modules() -> None:
    graph = grimp.build_graph("stop_tui", cache_dir=None)
    assert len(graph.modules) > 50  # the whole package was read
    assert cycles(graph) == []


def private_imports(root: Path) -> list[str]:
    """``from stop_tui.x import _name`` where ``_name`` is private to another module."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("stop_tui"):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{path.relative_to(root.parent)}: {node.module}.{alias.name}")
    return found


def test_no_module_imports_a_private_name_of_another(tmp_path: Path) -> None:
    bad = tmp_path / "pkg" / "m.py"
    bad.parent.mkdir()
    bad.write_text("from stop_tui.tui.app import _bindings\n", encoding="utf-8")
    assert private_imports(bad.parent) == ["pkg/m.py: stop_tui.tui.app._bindings"]
    assert private_imports(PACKAGE) == []
