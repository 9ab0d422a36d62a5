"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.openai_server import OpenAIServer

# --- language models: a real OpenAI-compatible HTTP server on 127.0.0.1 -------------


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    """A started :class:`tests.support.openai_server.OpenAIServer` (model ``test-model``,
    no key required); stopped after the test. Configure it (``api_key``,
    ``models``, ``max_choices``, ``responder``, ``enqueue(...)``) in the test."""
    server = OpenAIServer().start()
    try:
        yield server
    finally:
        server.stop()
