"""A live run inside the app: the prepared engine, its event stream, and the
approval requests waiting for a person.

The engine runs as an asyncio worker on the app's event loop. Bus callbacks and
gate listeners only *post messages*; the run screen's handlers own the state.
Requests are also published on the workspace's answer board, as a headless run's
are: ``stop-tui pending`` lists them and ``stop-tui answer`` decides them from another
terminal (one claim per request: whichever answer comes first is the decision).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from textual.message import Message
from textual.worker import Worker

from stop_tui.engine.approval import ApprovalRequest, SharedAnswers
from stop_tui.engine.events import Event
from stop_tui.engine.session import Prepared
from stop_tui.errors import UserError
from stop_tui.store.answers import AnswerBoard
from stop_tui.tui.messages import ApprovalNeeded, EngineEvent, RunEnded


class RunSession:
    def __init__(self, prepared: Prepared) -> None:
        self.prepared = prepared
        self.run = prepared.run
        self.bus = prepared.run.bus
        self.gate = prepared.run.gate
        self.worker: Worker[str] | None = None
        self.status = "starting"
        self._post: Callable[[Message], object] | None = None
        self.shared: SharedAnswers | None = None

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def active(self) -> bool:
        return self.worker is not None and not self.worker.is_finished

    def attach(self, post: Callable[[Message], object]) -> None:
        """Route the engine's events and approval requests to ``post`` (a screen's
        ``post_message``)."""
        self._post = post
        if self.shared is None:  # first, so that every request is offered before it shows
            board = AnswerBoard(self.prepared.store.lock_dir, self.run_id)
            self.shared = SharedAnswers(self.gate, board)
            self.bus.on(self.shared.on_event)
        self.bus.on(self._on_event)
        self.gate.listeners.append(self._on_request)

    def _on_event(self, event: Event) -> None:
        if self._post is not None:
            self._post(EngineEvent(event))

    def _on_request(self, request: ApprovalRequest) -> None:
        if self._post is not None:
            self._post(ApprovalNeeded(request))

    def pending(self) -> list[ApprovalRequest]:
        """Requests still waiting for a person, oldest first."""
        return [r for r in self.gate.pending.values() if r.pending]

    async def drive(self) -> str:
        """The worker's body: run the engine, then close the sandbox and backend."""
        status = "failed"
        error = ""
        watching = asyncio.ensure_future(self.shared.watch()) if self.shared else None
        try:
            self.status = "running"
            status = await self.run.run()
        except asyncio.CancelledError:
            status = "cancelled"
            raise
        except UserError as exc:
            error = exc.line()
        except Exception as exc:  # never let the engine take the interface down
            error = f"{type(exc).__name__}: {exc}"
        finally:
            self.status = status
            if watching is not None:
                watching.cancel()
            if self.shared is not None:
                self.shared.close()
            try:
                await asyncio.shield(self.prepared.close())
            except Exception as exc:  # pragma: no cover - closing failed
                error = error or f"closing the sandbox failed: {exc}"
            if self._post is not None:
                self._post(RunEnded(status, error))
        return status

    def pause(self) -> None:
        self.run.pause()

    def resume(self) -> None:
        self.run.resume()

    def stop(self) -> None:
        if self.worker is not None and not self.worker.is_finished:
            self.worker.cancel()
