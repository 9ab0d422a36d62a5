"""Every module of the package keeps to one job: it opens with a docstring saying what
the job is, and none is over 600 lines (the demo program library aside: it is data,
the scripted programs the demo backend answers with)."""

from __future__ import annotations

import ast
from pathlib import Path

import stop_tui

PACKAGE = Path(stop_tui.__file__).parent
MAX_LINES = 600
DATA = PACKAGE / "lm" / "demo" / "library"


def modules() -> list[Path]:
    return [path for path in sorted(PACKAGE.rglob("*.py")) if DATA not in path.parents]


def test_the_walk_sees_the_whole_package_and_leaves_out_only_the_demo_library() -> None:
    found = {path.relative_to(PACKAGE).as_posix() for path in modules()}
    assert {"engine/loop.py", "sandbox/layers.py", "config.py"} <= found
    assert len(found) > 100
    assert not any(name.startswith("lm/demo/library/") for name in found)


def test_no_module_is_over_600_lines() -> None:
    long = {
        path.relative_to(PACKAGE).as_posix(): n
        for path in modules()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_every_module_opens_with_a_docstring() -> None:
    missing = [
        path.relative_to(PACKAGE).as_posix()
        for path in modules()
        if not ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert missing == []
