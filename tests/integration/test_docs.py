"""The documentation: the site builds strictly, its references are generated from the
code, the README stays short, and the README's quick start is what CI runs."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from stop_tui.cli import build_parser
from stop_tui.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"

# Every section the README had before it became short, and the page that holds it now.
MOVED = {
    "app.md": ["The app (Textual)", "Screens", "Keys", "Tests and screenshots"],
    "running-stop.md": [
        "Running STOP",
        "What one run does",
        "Replay and transfer",
        "Experiments: sweeps, statistics, figures",
    ],
    "approvals-audit.md": ["Approvals", "The safety audit"],
    "models.md": [
        "Language models: endpoints, settings, budgets, transcripts",
        "Pointing stop-tui at a model",
        "Budgets and caps",
        "Transcripts, replay and resume",
        "For developers",
    ],
    "configuration.md": ["The config file: `stop.toml`", "Environment variables", "Precedence"],
    "demo-model.md": [
        "The `demo` model: scripted, offline, not a language model",
        "What it answers",
        "The library (weakest first)",
        "How it chooses (the step rule)",
        "Measured with the real engine (sandboxed), `parity_noise`, default settings",
        "Options",
    ],
    "tasks.md": [
        "Tasks",
        "The six tasks",
        "Time limits",
        "Malformed outputs",
        "Seed solutions compared with the paper",
        "Strong reference solutions",
        "Tests",
        "Adding a task",
    ],
    "isolation.md": [
        "Isolation: how generated code is run",
        "`stop-tui doctor`",
        "What is tested",
        "Measured cost",
        "One evaluation, isolated vs in-process",
        "Single operations",
        "What a job sees, and what it cannot reach",
    ],
    "git-store.md": [
        "Runs live in git",
        "Layout",
        "Browsing a run with plain git",
        "Commands",
        "Crash safety and locking",
        "Speed",
        "Verified history",
    ],
    "crashes.md": [
        "Crashes and `resume`",
        "What is guaranteed after a crash",
        "How it is tested",
        "Known limits",
    ],
    "benchmarks.md": ["Benchmarks"],
    "development.md": ["Development"],
    "getting-started.md": ["Install and run (Debian, Ubuntu)"],
}


def build(source: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """A strict build (every warning an error), from scratch, as CI does it."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-E",
            "-q",
            "-b",
            "html",
            str(source),
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        check=False,
    )


def setting_keys(model: type, prefix: str = "") -> list[str]:
    """Every key of the settings model, nested sections as ``section.key``."""
    keys = []
    for name, field in model.model_fields.items():  # type: ignore[attr-defined]
        sub = field.annotation
        if isinstance(sub, type) and hasattr(sub, "model_fields"):
            keys += setting_keys(sub, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def test_site_builds_strictly_with_generated_references(tmp_path: Path) -> None:
    result = build(DOCS, tmp_path / "site")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr
    pages = {p.stem for p in (tmp_path / "site").glob("*.html")}
    assert {p.stem for p in DOCS.glob("*.md")} <= pages
    config = (tmp_path / "site" / "configuration.html").read_text()
    for key in setting_keys(Settings):
        assert (
            f'<code class="docutils literal notranslate"><span class="pre">{key.split(".")[-1]}</span></code>'
            in config
        ), key
    assert "STOP_TUI_MAX_COST" in config and "OPENAI_BASE_URL" in config
    assert "<!-- stop-tui:" not in config
    cli = (tmp_path / "site" / "cli.html").read_text()
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        assert f'id="stop-tui-{name}"' in cli, name
        for action in command._actions:
            for option in action.option_strings:
                assert f'<span class="pre">{option}</span>' in cli, (name, option)
    # Nothing is fetched when the site is read: no web fonts, no remote scripts.
    for page in (tmp_path / "site").glob("*.html"):
        text = page.read_text()
        assert not re.search(r"<(link|script)[^>]+(href|src)=\"https?://", text), page.name


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    source = tmp_path / "docs"
    shutil.copytree(DOCS, source)
    page = source / "tasks.md"
    page.write_text(page.read_text() + "\nSee [the missing page](no-such-page.md).\n")
    result = build(source, tmp_path / "site")
    assert result.returncode != 0 and "no-such-page.md" in result.stderr
    shutil.copytree(DOCS, source, dirs_exist_ok=True)
    page.write_text(page.read_text() + "\nSee [isolation](isolation.md#no-such-heading).\n")
    result = build(source, tmp_path / "site2")
    assert result.returncode != 0 and "no-such-heading" in result.stderr


def test_readme_is_short_and_links_every_page() -> None:
    text = README.read_text()
    assert len(text.splitlines()) < 200
    links = set(re.findall(r"\]\((docs/[^)#]+)", text))
    for link in links:
        assert (ROOT / link).exists(), link
    pages = {f"docs/{p.name}" for p in DOCS.glob("*.md") if p.name != "index.md"}
    assert pages <= links, sorted(pages - links)
    assert "](docs/run-screen.svg)" in text


@pytest.mark.parametrize("page", sorted(MOVED))
def test_every_section_taken_out_of_the_readme_lives_on_a_page(page: str) -> None:
    headings = {
        re.sub(r"^#+ ", "", line)
        for line in (DOCS / page).read_text().splitlines()
        if re.match(r"^#{1,4} ", line)
    }
    for heading in MOVED[page]:
        assert heading in headings, (page, heading)


def quickstart(name: str) -> str:
    match = re.search(
        rf"<!-- quickstart:{name} -->\n```console\n(.+)\n```\n<!-- /quickstart:{name} -->",
        README.read_text(),
    )
    assert match, name
    return match.group(1)


def test_ci_runs_the_readme_quick_start_as_written() -> None:
    printed = subprocess.run(
        ["bash", str(ROOT / ".ci" / "run"), "--print-commands"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.splitlines()
    run, tests = quickstart("run"), quickstart("test")
    assert printed == [run, tests]
    # An isolated environment, the system packages, the app; then the tests.
    assert "python3 -m venv .venv" in run and "bubblewrap" in run and "python3-venv" in run
    assert run.endswith(".venv/bin/stop-tui run")
    assert "pip install ." in run and "pip install" not in run.split("python3 -m venv")[0]
    assert "'.[test]'" in tests and "pytest" in tests
    # Getting started shows the same two commands.
    started = (DOCS / "getting-started.md").read_text()
    assert run in started and tests in started


def test_the_test_extra_includes_the_docs_tools() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert "stop-tui[docs]" in extras["test"]
    assert any(dep.startswith("sphinx") for dep in extras["docs"])
