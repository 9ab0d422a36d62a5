"""Layer probe, the refusal to run with weaker isolation, and ``stop-tui doctor``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from stop_tui.errors import UserError
from stop_tui.sandbox import Sandbox, codec
from stop_tui.sandbox.launch import package_root
from stop_tui.sandbox.layers import DISABLE_ENV, REQUIRED, probe

full = pytest.mark.skipif(not probe().full, reason="the full isolation stack is not available")


def run_cli(*args: str, disable: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(package_root())}
    env.pop(DISABLE_ENV, None)
    if disable:
        env[DISABLE_ENV] = disable
    return subprocess.run(
        [sys.executable, "-m", "stop_tui", *args],
        capture_output=True,
        text=True,
        timeout=600,  # doctor --attacks also evaluates forged replies and runs an improver
        env=env,
        check=False,
    )


@full
def test_probe_reports_the_full_stack_here() -> None:
    report = probe()
    assert report.full and report.uncovered == []
    assert all(report.active(name) for name in REQUIRED)
    assert report.landlock_abi >= 1


@pytest.mark.parametrize("layer", REQUIRED)
def test_a_missing_layer_is_refused_in_one_line(layer: str) -> None:
    with pytest.raises(UserError) as caught:
        Sandbox(disable=(layer,))
    line = str(caught.value)
    assert "\n" not in line
    assert "--unsafe" in line and "missing" in line
    if layer == "bwrap":
        assert "apt-get install bubblewrap" in line
    report = probe((layer,))
    assert not report.full and not report.active(layer)


def test_missing_layers_show_up_as_uncovered_attacks() -> None:
    report = probe(("bwrap", "landlock"))
    assert "write outside scratch" in report.uncovered
    assert "read the user's files" in report.uncovered
    report = probe(("seccomp",))
    if os.geteuid() == 0:
        assert "fork bomb" in report.uncovered


def test_the_environment_variable_disables_layers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DISABLE_ENV, "landlock")
    with pytest.raises(UserError, match="Landlock"):
        Sandbox()


def test_unknown_layer_names_are_user_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DISABLE_ENV, "bwrapp")
    with pytest.raises(UserError, match="bwrapp"):
        probe()


@full
async def test_unsafe_runs_with_weaker_isolation(tmp_path: Any) -> None:
    async with Sandbox(unsafe=True, disable=("bwrap",)) as sb:
        source = "import os\ndef algorithm(path):\n    return [os.getpid(), open(path).read()]\n"
        secret = tmp_path / "secret.txt"
        secret.write_text("host file")
        async with await sb.spawn(
            "solution", {"source": source, "entry_point": "algorithm"}
        ) as child:
            assert await child.recv(30) == {"ready": True}
            reply = await child.request({"call": codec.encode([str(secret)])}, timeout=10)
    # Without bubblewrap, Landlock still hides host files; the job is pid 1 of its namespace.
    assert reply.message is not None
    assert reply.message["error"].startswith("PermissionError"), reply


@full
def test_doctor_reports_the_full_stack() -> None:
    result = run_cli("doctor")
    assert result.returncode == 0, result.stderr
    for text in ("Sandbox isolation: OK", "Landlock", "seccomp", "fork bomb"):
        assert text in result.stdout
    assert "UNCOVERED" not in result.stdout


def test_doctor_json_and_exit_code_with_a_missing_layer() -> None:
    result = run_cli("doctor", "--json", disable="bwrap,seccomp")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False
    section = data["sections"][0]
    assert section["data"]["layers"]["bwrap"]["active"] is False
    assert "fork bomb" in section["data"]["uncovered"] or os.geteuid() != 0
    assert any("apt-get install bubblewrap" in note for note in section["notes"])


def test_doctor_table_names_uncovered_attacks() -> None:
    result = run_cli("doctor", disable="landlock,bwrap")
    assert result.returncode == 1
    assert "UNCOVERED" in result.stdout and "write outside scratch" in result.stdout
    assert "Traceback" not in result.stderr


@full
def test_doctor_attacks_all_blocked_by_the_full_stack() -> None:
    result = run_cli("doctor", "--attacks", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    attacks = data["sections"][1]
    assert attacks["title"] == "Sandbox attack self-test" and attacks["ok"]
    assert len(attacks["rows"]) == 12 and all(row["ok"] for row in attacks["rows"])


@full
def test_doctor_attacks_show_what_gets_through_weaker_isolation() -> None:
    result = run_cli("doctor", "--attacks", "--json", disable="bwrap,landlock,seccomp")
    assert result.returncode == 1
    rows = {row["name"]: row for row in json.loads(result.stdout)["sections"][1]["rows"]}
    for name in ("fork", "write outside scratch", "read a hidden file", "TCP to 127.0.0.1"):
        assert not rows[name]["ok"] and rows[name]["detail"].startswith("GOT THROUGH")
    assert not rows["read the tasks' evaluators and seeds"]["ok"]
    assert rows["2 GiB allocation"]["ok"] and rows["50 MiB stdout flood"]["ok"]
    assert rows["read secrets from the environment"]["ok"]


@full
def test_doctor_attacks_show_jobs_reaching_each_other_without_per_job_namespaces() -> None:
    result = run_cli("doctor", "--attacks", "--json", disable="userns,seccomp")
    assert result.returncode == 1
    rows = {row["name"]: row for row in json.loads(result.stdout)["sections"][1]["rows"]}
    for name in ("shared memory between two jobs", "fill the scratch other jobs use"):
        assert not rows[name]["ok"] and rows[name]["detail"].startswith("GOT THROUGH")
    # Status before clean-up and no zygote reset hold in every mode; bwrap still hides our data.
    assert rows["stall clean-up to kill other jobs"]["ok"]
    assert rows["read the tasks' evaluators and seeds"]["ok"]
