"""Sphinx configuration of the documentation site (Markdown pages read by MyST).

Build it strictly, as CI does (tests/integration/test_docs.py): every warning is an error, so a
broken link, a missing anchor or a page left out of the table of contents fails.

    sphinx-build -W --keep-going -b html docs site
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))

project = "stop-tui"
author = "the stop-tui authors"
extensions = ["myst_parser", "stop_reference"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "conf.py"]

# Markdown: GitHub-style heading anchors, so [text](page.md#a-heading) links resolve
# (and a wrong one is a warning, which fails the strict build).
myst_heading_anchors = 4
myst_enable_extensions = ["attrs_inline"]
suppress_warnings: list[str] = []

html_theme = "furo"  # system fonts, search in the page: the build fetches nothing
html_title = "stop-tui"
html_static_path: list[str] = []
html_show_sourcelink = False
