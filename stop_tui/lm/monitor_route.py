"""Route the monitor model's requests to its own backend, everything else to the run's.

The monitor (:mod:`stop_tui.engine.monitor`) labels its requests ``gN/monitor/...``;
:class:`MonitorRoute` sits under the run's transcript recorder, so the monitor's
requests are recorded in the same transcript as every other request and a replay
serves them from it without any endpoint.
"""

from __future__ import annotations

from stop_tui.lm.types import Backend, ChatRequest, ChatResult

#: The context segment that marks a monitor request (``g2/monitor/c3``).
MONITOR_SEGMENT = "monitor"
#: How the monitor's system prompt begins (the demo backend recognises its requests by it).
MONITOR_SYSTEM = "You are the monitor of a stop-tui run"


def is_monitor_request(request: ChatRequest) -> bool:
    return MONITOR_SEGMENT in request.context.split("/")


def with_monitor(main: Backend, monitor: Backend | None) -> Backend:
    """``main``, or a :class:`MonitorRoute` when the monitor has a backend of its own."""
    return main if monitor is None else MonitorRoute(main, monitor)


class MonitorRoute:
    """A :class:`~stop_tui.lm.types.Backend`: monitor requests to ``monitor``, the rest to ``main``."""

    def __init__(self, main: Backend, monitor: Backend) -> None:
        self.main = main
        self.monitor = monitor
        self.name = main.name
        # The transcript writer redacts the keys it is told of (RecordingBackend asks for
        # ``_secret``); :attr:`secrets` names the monitor's as well.
        self._secret = getattr(main, "_secret", None)
        self.secrets = [s for s in (self._secret, getattr(monitor, "_secret", None)) if s]

    def __repr__(self) -> str:
        return f"MonitorRoute({self.main!r}, monitor={self.monitor!r})"

    def _pick(self, request: ChatRequest) -> Backend:
        return self.monitor if is_monitor_request(request) else self.main

    async def complete(self, request: ChatRequest) -> ChatResult:
        return await self._pick(request).complete(request)

    async def complete_as(self, request: ChatRequest, occurrence: int) -> ChatResult:
        backend = self._pick(request)
        complete_as = getattr(backend, "complete_as", None)
        if complete_as is not None:
            result: ChatResult = await complete_as(request, occurrence)
            return result
        return await backend.complete(request)

    async def aclose(self) -> None:
        try:
            await self.monitor.aclose()
        finally:
            await self.main.aclose()
