"""Errors meant for people.

A :class:`UserError` carries one readable line that names the problem and the
fix. Front ends print it without a traceback and exit non-zero.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix: bad input, bad configuration, missing tool."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(self.line())

    def line(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message
