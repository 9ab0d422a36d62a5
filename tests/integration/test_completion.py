"""Shell completion: the real ``stop-tui`` answering the shell's request (argcomplete's
protocol: COMP_LINE, COMP_POINT, _ARGCOMPLETE) with commands, options, run ids of a real
workspace and the registry's task names, without loading the heavy modules."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stop_tui.cli import COMMANDS
from stop_tui.tasks.registry import task_names
from tests.integration.test_cli_run import SMALL, cli

HEAVY = ("textual", "pydantic", "pydantic_settings", "numpy", "openai", "git", "rich")


def complete(line: str, cwd: Path, **env_extra: str) -> tuple[list[str], str]:
    """What the shell would offer for ``line`` (cursor at its end), and the import log."""
    out = cwd / "completions.txt"
    out.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOP_TUI_", "OPENAI_"))}
    env.update(
        COMP_LINE=line,
        COMP_POINT=str(len(line)),
        _ARGCOMPLETE="1",
        _ARGCOMPLETE_IFS="\n",
        _ARGCOMPLETE_STDOUT_FILENAME=str(out),
        **env_extra,
    )
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "stop_tui"],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    words = [w.strip() for w in out.read_text().split("\n") if w.strip()]
    return words, result.stderr


def imported(log: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"\|\s+([\w.]+)\s*$", log, re.MULTILINE)}


def test_commands_and_options_without_heavy_imports(tmp_path: Path) -> None:
    words, _ = complete("stop-tui ", tmp_path)
    assert set(COMMANDS) <= set(words) and "completion" in words
    assert "--version" in words
    words, _ = complete("stop-tui re", tmp_path)
    assert sorted(words) == sorted(c for c in COMMANDS if c.startswith("re"))
    assert {"replay", "resume"} <= set(words)
    words, log = complete("stop-tui run --", tmp_path)
    for option in ("--headless", "--task", "--model", "--generations", "--workspace"):
        assert option in words
    assert "--json" not in words  # another command's option
    assert not imported(log) & set(HEAVY), sorted(imported(log) & set(HEAVY))


def test_task_names_come_from_the_registry(tmp_path: Path) -> None:
    words, _ = complete("stop-tui run --task ", tmp_path)
    assert sorted(words) == task_names() and "parity_noise" in words
    words, _ = complete("stop-tui eval x.py --task par", tmp_path)
    assert sorted(words) == [name for name in task_names() if name.startswith("par")]
    words, _ = complete("stop-tui transfer seed.py --tasks three_sat m", tmp_path)
    assert words == ["maxcut", "modified_quadratic_assignment"]


def test_run_ids_come_from_a_real_workspace(tmp_path: Path) -> None:
    made = cli("run", "--headless", "--generations", "1", "--model", "demo", *SMALL, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    runs = json.loads(cli("runs", "--json", cwd=tmp_path).stdout)
    run_id = runs[0]["run_id"]
    # The default workspace (./stop-runs), for every command that takes a RUN.
    for command in ("show", "resume", "replay", "export", "open"):
        words, _ = complete(f"stop-tui {command} {run_id[:6]}", tmp_path)
        assert words == [run_id], command
    # --workspace given on the line, from another directory.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    words, _ = complete(f"stop-tui show --workspace {tmp_path / 'stop-runs'} ", elsewhere)
    assert run_id in words
    # STOP_TUI_WORKSPACE, as the commands read it.
    words, _ = complete(
        "stop-tui replay 2", elsewhere, STOP_TUI_WORKSPACE=str(tmp_path / "stop-runs")
    )
    assert words == [run_id]
    # A prefix that matches nothing, and a directory without a workspace: nothing, no error.
    assert complete("stop-tui show zz", tmp_path)[0] == []
    assert complete("stop-tui show 2", elsewhere)[0] == []


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_command_prints_the_script(tmp_path: Path, shell: str) -> None:
    result = cli("completion", shell, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "stop-tui" in result.stdout and "_ARGCOMPLETE" in result.stdout
    program = shutil.which(shell)
    if program is not None:  # the shell parses it (bash is always here; zsh/fish if installed)
        check = [program, "-n"] if shell != "fish" else [program, "--no-execute"]
        script = tmp_path / f"stop-tui.{shell}"
        script.write_text(result.stdout)
        parsed = subprocess.run([*check, str(script)], capture_output=True, text=True)
        assert parsed.returncode == 0, parsed.stderr


def test_unknown_shell_is_one_line(tmp_path: Path) -> None:
    result = cli("completion", "tcsh", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "bash" in result.stderr
