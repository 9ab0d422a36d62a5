"""The quick start's test command installs ``.[test]`` into a fresh venv: every package
the tests import must come from the project's dependencies or its test extra."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def requirement_names(extras: dict[str, list[str]], deps: list[str], extra: str) -> set[str]:
    names: set[str] = set()
    for req in deps + extras[extra]:
        name = re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower().replace("_", "-")
        if name == "stop-tui":
            for inner in re.findall(r"\[(.+)\]", req)[0].split(","):
                names |= requirement_names(extras, [], inner.strip())
        else:
            names.add(name)
    return names


def test_every_third_party_import_of_the_tests_is_installed_by_the_test_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    allowed = requirement_names(project["optional-dependencies"], project["dependencies"], "test")
    local = {p.stem for p in (ROOT / "tests").rglob("*.py")} | {"tests", "stop_tui"}
    dists = packages_distributions()
    missing = {}
    for path in (ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                tops = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                if top in sys.stdlib_module_names or top in local or top not in dists:
                    continue  # stdlib, ours, or code that only runs inside the sandbox
                names = {d.lower().replace("_", "-") for d in dists[top]}
                if not names & allowed:
                    missing[top] = path.name
    assert not missing, f"imported by tests but not in the test extra: {missing}"
