import subprocess
import sys

from tests.support.paper_tasks import PAPER_TASKS


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


def test_the_installed_package_finds_its_data_outside_the_checkout(tmp_path) -> None:
    """Run from a directory outside the checkout: tasks/ and improvers/ must come with
    the package (a wheel ships them as stop_tui/_data/, not as top-level packages)."""
    code = (
        "import stop_tui.paths as p, importlib.util as u; "
        "print(p.tasks_dir()); print(p.improvers_dir()); "
        "print(u.find_spec('tasks') is None and u.find_spec('improvers') is None); "
        "print('site-packages' in str(p.PACKAGE_DIR))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 0, result.stderr
    tasks, improvers, no_generic_packages, installed = result.stdout.split("\n")[:4]
    from pathlib import Path

    assert {p.name for p in Path(tasks).iterdir() if p.is_dir()} >= set(PAPER_TASKS)
    assert (Path(improvers) / "seed.py").is_file()
    if installed == "True":  # a real install (CI); an editable one puts the checkout on sys.path
        assert no_generic_packages == "True"
        assert "_data" in tasks
