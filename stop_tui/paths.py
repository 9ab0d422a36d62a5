"""Where the shipped data lives: ``tasks/`` and ``improvers/``.

From a checkout they sit beside the package; from a wheel they are installed
inside it as ``stop_tui/_data/``. Neither is an importable package.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    for candidate in (PACKAGE_DIR / "_data" / name, PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"stop-tui data folder {name!r} is missing; reinstall stop-tui")


def tasks_dir() -> Path:
    return _data_dir("tasks")


def improvers_dir() -> Path:
    return _data_dir("improvers")
