"""How far a streamed chat completion has got: :class:`StreamMeter` counts one stream's
chunks and characters and reports them, throttled, as
:class:`~stop_tui.lm.types.StreamProgress` to a backend's ``on_progress`` hook.

Tokens are approximate: the content (or reasoning) chunks received, or the characters / 4
when that is more (a server that sends several tokens a chunk). Reports never slow the
stream: a chunk costs a clock read, and what the interval held back goes out at its end
by one timer on the event loop. A hook that raises is not told again.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from stop_tui.lm.types import ProgressHook, StreamProgress

__all__ = ["StreamMeter", "reasoning_chars"]


def reasoning_chars(delta: Any) -> int:
    """Characters of hidden reasoning a chunk streams (DeepSeek's and llama.cpp's
    ``reasoning_content``, OpenRouter's ``reasoning``; the openai client keeps fields it
    does not know as attributes): progress too, never an answer."""
    for name in ("reasoning_content", "reasoning"):
        value = getattr(delta, name, None)
        if isinstance(value, str) and value:
            return len(value)
    return 0


class StreamMeter:
    """One stream's progress: counts chunks and characters and reports them to the hook
    at most every ``interval`` seconds. A chunk costs a clock read; chunks held back by
    the interval are reported by one timer at its end (a burst followed by a long wait
    shows the burst), never by a task of their own."""

    __slots__ = ("chars", "chunks", "context", "hook", "interval", "last", "loop", "reported",
                 "start", "stream", "timer")  # fmt: skip

    def __init__(self, stream: int, context: str, hook: ProgressHook | None, interval: float):
        self.stream = stream
        self.context = context
        self.hook = hook
        self.interval = interval
        self.loop = asyncio.get_running_loop()
        self.timer: asyncio.TimerHandle | None = None
        self.start = self.last = time.monotonic()
        self.chunks = 0
        self.chars = 0
        self.reported = -1  # tokens in the last report (-1: none yet, the stream is not open)

    def chunk(self, chars: int) -> None:
        if chars <= 0:
            return  # a role-only or empty delta carries nothing
        self.chunks += 1
        self.chars += chars
        if self.hook is None or self.timer is not None or self.reported < 0:
            return
        wait = self.interval - (time.monotonic() - self.last)
        if wait <= 0:
            self.report()
        else:
            self.timer = self.loop.call_later(wait, self.report)

    def report(self, *, done: bool = False) -> None:
        """Report the tokens so far: when the stream opens, when there are new ones, and
        (``done``) once at the end of a stream that opened."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        hook = self.hook
        tokens = max(self.chunks, self.chars // 4)
        if hook is None or (done and self.reported < 0) or (not done and tokens <= self.reported):
            return
        self.last, self.reported = time.monotonic(), tokens
        if done:
            self.hook = None  # nothing follows the end
        try:
            hook(StreamProgress(self.stream, self.context, tokens, self.last - self.start, done))
        except Exception:  # a display's failure never breaks a request: stop telling it
            self.hook = None
