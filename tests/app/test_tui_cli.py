"""How the command line reaches the app: no command opens it, ``open`` checks the run
first (one error line, no screen), ``--help`` still prints help."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stop_tui.cli import main
from tests.support.tui import SAVED, shared_saved_run


def test_no_command_opens_the_home_screen(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[Any] = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STOP_TUI_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setattr(
        "stop_tui.tui.launch.launch_home", lambda settings, **kw: calls.append(settings) or 7
    )
    assert main([]) == 7
    assert len(calls) == 1 and Path(calls[0].workspace) == tmp_path / "ws"


def test_help_still_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "open" in capsys.readouterr().out


def test_open_unknown_run_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["open", "20990101-000000-abcd", "--workspace", str(tmp_path / "ws")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown run" in err[0] and "Traceback" not in err[0]


def test_open_a_saved_run_starts_the_app_on_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    workspace = shared_saved_run(tmp_path_factory.getbasetemp())
    started: list[Any] = []

    def fake_run(app: Any) -> int:
        started.append((app.start, app.start_run_id, Path(app.settings.workspace)))
        return 0

    monkeypatch.setattr("stop_tui.tui.launch._run", fake_run)
    assert main(["open", SAVED, "--workspace", str(workspace)]) == 0
    assert started == [("open", SAVED, workspace)]
