import subprocess
import sys


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stop_tui", *args], capture_output=True, text=True, timeout=60
    )


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("stop-tui ")


def test_unknown_option_is_one_readable_line() -> None:
    result = run_cli("--no-such-option")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "--no-such-option" in lines[0] and "--help" in lines[0]
    assert "Traceback" not in result.stderr
