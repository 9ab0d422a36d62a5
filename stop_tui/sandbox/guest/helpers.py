"""Helpers an improver may import inside the sandbox: ``from helpers import extract_code``.

The guest directory is on the guest's ``sys.path``. Semantics follow the
reference implementation (microsoft/stop ``helpers.extract_code``): the
largest fenced block wins, measured with its fence lines; a fence line that
has text after the backticks opens a (possibly nested) block, a bare fence
closes one; the outermost fence lines are removed; ``None`` when there is no
closed block. One deliberate difference: a bare fence outside any block
opens one (the reference treats it as a closing fence and so never finds
blocks written as ``` ... ```).
"""

from __future__ import annotations

from typing import overload


@overload
def extract_code(text: str) -> str | None: ...
@overload
def extract_code(text: list[str]) -> list[str | None]: ...


def extract_code(text: str | list[str]) -> str | list[str | None] | None:
    """The largest fenced code block of ``text`` (or of each string of a list)."""
    if isinstance(text, list):
        return [extract_code(item) for item in text]
    if isinstance(text, str):
        return _largest_block(text)
    return None


def _largest_block(text: str) -> str | None:
    best: list[str] = []
    best_size = 0
    current: list[str] = []
    depth = 0
    for line in text.split("\n"):
        if line.startswith("```"):
            if line[3:].strip() or depth == 0:  # an opening fence: ```python, or bare at top
                current.append(line)
                depth += 1
                continue
            depth -= 1
            current.append(line)
            if depth == 0:
                size = sum(len(item) + 1 for item in current)
                if size > best_size:
                    best, best_size = current, size
                current = []
        elif depth > 0:
            current.append(line)
    if not best:
        return None
    inner = "\n".join(best).strip().split("\n")[1:-1]
    return "\n".join(inner) or None
