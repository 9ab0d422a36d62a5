"""Messages from the engine side (workers, gate listeners) to the screens that own
the state. The engine never touches a widget: it publishes, the handlers render."""

from __future__ import annotations

from textual.message import Message

from stop_tui.engine.approval import ApprovalRequest
from stop_tui.engine.events import Event


class EngineEvent(Message):
    """One event from a run's bus. A waiting one is dropped when the next in the queue
    supersedes it (a newer progress event of the same request: only the newest shows)."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event

    def can_replace(self, message: Message) -> bool:
        # Textual asks the message it took from the queue whether the next one
        # (``message``) may take its place.
        return isinstance(message, EngineEvent) and message.event.supersedes(self.event)


class ApprovalNeeded(Message):
    """The gate waits for a person to answer ``request``."""

    def __init__(self, request: ApprovalRequest) -> None:
        super().__init__()
        self.request = request


class RunEnded(Message):
    """The engine task is over (``status``) and its sandbox is closed."""

    def __init__(self, status: str, error: str = "") -> None:
        super().__init__()
        self.status = status
        self.error = error
