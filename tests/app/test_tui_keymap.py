"""A user keymap: ``[keymap]`` in stop.toml rebinds the app's keys by binding id. The
new key works and the old one no longer does; the footer, the ``?`` help, the command
palette and the buttons name the new key; a bad keymap is one error line at load."""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.table import Table
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Button, Static
from textual.widgets._footer import FooterKey

from stop_tui.keymap import SCOPES, binding_ids, check_keymap, label
from stop_tui.tui import screens
from stop_tui.tui.app import StopApp
from stop_tui.tui.commands import ActionsProvider
from stop_tui.tui.screens.approval import ApprovalScreen
from stop_tui.tui.screens.dialogs import HelpScreen
from stop_tui.tui.screens.history import HistoryScreen
from stop_tui.tui.screens.home import HomeScreen
from tests.support.tui import approval_request, settings_for, shared_saved_run, wait_for

ROOT = Path(__file__).resolve().parents[2]


def footer_keys(screen: Screen[Any]) -> dict[str, str]:
    """Description -> key as the footer shows it."""
    return {k.description: k.key_display for k in screen.query(FooterKey)}


def help_rows(screen: HelpScreen) -> list[str]:
    tables = [w.content for w in screen.query(Static) if isinstance(w.content, Table)]
    console = Console(width=120, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(tables[0])
    return [" ".join(line.split()) for line in console.export_text().splitlines()]


@pytest.fixture
def saved_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_saved_run(tmp_path_factory.getbasetemp())


async def test_a_rebound_key_works_and_shows_everywhere(saved_workspace: Path) -> None:
    workspace = saved_workspace
    keymap = {"home.history": "y", "app.help": "f1"}
    app = StopApp(settings_for(workspace, keymap=keymap), snapshot=True)
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(
            pilot, lambda: isinstance(app.screen, HomeScreen) and app.screen.runs, "home"
        )
        home = app.screen
        await wait_for(pilot, lambda: "History" in footer_keys(home), "the footer")
        assert footer_keys(home)["History"] == "y"
        assert footer_keys(home)["Help"] == "f1"

        commands = {name: help_text for name, help_text, _ in ActionsProvider(home)._commands()}
        assert commands["History"] == "key: y"

        await pilot.press("h")  # the old key does nothing now
        await pilot.press("question_mark")
        await pilot.pause(0.1)
        assert app.screen is home

        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
        rows = help_rows(app.screen)  # type: ignore[arg-type]
        assert "y History HomeScreen" in rows and "f1 Help everywhere" in rows
        assert not any(row.startswith("h History") for row in rows)
        await pilot.press("f1")  # the key that opens the help closes it
        await wait_for(pilot, lambda: app.screen is home, "the help to close")

        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen), "the history")


async def test_the_approval_modal_names_the_rebound_keys(tmp_path: Path) -> None:
    keymap = {"approval.approve": ["y", "a"], "approval.reject": "x", "approval.later": "f2"}
    app = StopApp(settings_for(tmp_path / "ws", keymap=keymap), snapshot=True)
    answers: list[Any] = []
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "home")
        app.push_screen(ApprovalScreen(approval_request()), answers.append)
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the modal")
        modal = app.screen
        await wait_for(pilot, lambda: "Reject…" in footer_keys(modal), "the footer")
        labels = {b.id: str(b.label) for b in modal.query(Button)}
        assert labels["approve"] == "Approve [y]"  # the first of its keys
        assert labels["reject"] == "Reject [x]" and labels["later"] == "Later [f2]"
        assert footer_keys(modal)["Reject…"] == "x"

        await pilot.press("escape")  # "later" moved to f2: esc does nothing now
        await pilot.pause(0.1)
        assert app.screen is modal and answers == []
        await pilot.press("a")  # kept next to y
        await wait_for(pilot, lambda: answers, "the answer")
        assert answers == [("approve", "")]


def test_every_binding_of_the_app_can_be_rebound() -> None:
    """Every screen's bindings have an id the keymap knows (nothing bound by hand)."""
    classes: list[type[Any]] = [StopApp]
    for info in pkgutil.iter_modules(screens.__path__):
        module = importlib.import_module(f"{screens.__name__}.{info.name}")
        classes += [
            c
            for c in vars(module).values()
            if isinstance(c, type) and c.__module__ == module.__name__
        ]
    ids = binding_ids()
    found = [
        (cls.__name__, binding)
        for cls in classes
        if issubclass(cls, (Screen, StopApp)) and "BINDINGS" in vars(cls)
        for binding in cls.BINDINGS
    ]
    assert len(found) > 50  # every screen's bindings were seen
    assert [(name, b) for name, b in found if not isinstance(b, Binding) or b.id not in ids] == []
    assert len(ids) == len(set(ids))


SCOPE_NAMES = {"app": "everywhere", "new": "new run", "confirm": "yes/no question"}


def keymap_rows() -> list[str]:
    """The table of binding ids in docs/app.md, generated from the key table."""
    rows = []
    seen: set[str] = set()
    for scope, specs in SCOPES.items():
        for spec in specs:
            if spec.id in seen:
                continue
            seen.add(spec.id)
            where = SCOPE_NAMES.get(scope, scope)
            rows.append(f"| `{spec.id}` | `{label(spec.id)}` | {spec.description} | {where} |")
    return rows


def test_the_docs_list_every_binding_id() -> None:
    readme = (ROOT / "docs" / "app.md").read_text(encoding="utf-8")
    missing = [row for row in keymap_rows() if row not in readme.splitlines()]
    assert not missing, "docs/app.md (Your own keys) lacks these rows:\n" + "\n".join(missing)
    example = readme.split("```toml\n[keymap]\n", 1)[1].split("```", 1)[0]
    assert check_keymap(tomllib.loads(example))["approval.reject"] == "x,r"


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[keymap]\naprove = "y"\n', "did you mean 'run.improver' or 'approval.approve'?"),
        ('[keymap]\n"run.pause" = "ctlr+x"\n', "'ctlr' in 'ctlr+x' is not a modifier"),
    ],
)
def test_a_bad_keymap_is_one_line_naming_stop_toml(
    tmp_path: Path, toml: str, expected: str
) -> None:
    (tmp_path / "stop.toml").write_text(toml, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    env = {k: v for k, v in env.items() if not k.startswith("STOP_TUI_")}
    done = subprocess.run(
        [sys.executable, "-m", "stop_tui"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert str(tmp_path / "stop.toml") in lines[0] and expected in lines[0]
