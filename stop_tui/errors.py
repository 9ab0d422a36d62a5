"""Errors meant for people.

A :class:`UserError` carries one readable line that names the problem and the
fix. Front ends print it without a traceback and exit non-zero. :func:`read_text`
reads a file the user named, failing so.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A problem the user can fix: bad input, bad configuration, missing tool."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(self.line())

    def line(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


def read_text(path: Path, what: str, missing: str, hint: str) -> str:
    """The UTF-8 text of a file the user named; a :class:`UserError` when it is missing
    (``missing``, with ``hint``) or unreadable (naming ``what`` it should have been)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(missing, hint=hint) from None
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"cannot read {what} {path}: {exc}") from None
