"""A small real HTTP server on 127.0.0.1 that speaks the OpenAI chat completions API.

Used by tests with the real ``openai`` client (no mocks): it serves scripted
responses, counts requests, and injects faults (429 with Retry-After, 5xx, slow
responses beyond the client timeout, malformed JSON, fewer choices than ``n``,
missing ``usage``, 401, 404 for unknown models) and lists models on ``/v1/models``.

Requests with ``"stream": true`` are answered with server-sent events (one chunk per
word, a final usage chunk when ``stream_options.include_usage`` is set), as OpenAI
does. Modes emulate other providers: ``reasoning=True`` (an o-series model: rejects
``max_tokens`` and non-default temperatures with OpenAI's real error bodies, reports
``completion_tokens_details.reasoning_tokens``), ``no_n=True`` (400 for ``n`` > 1),
``stream_options=False`` (400 when ``stream_options`` is sent, as older vLLM did),
``serial=True`` (one request at a time: a second concurrent one gets 429, as
single-slot servers do). ``Reply.garbage_stream()`` streams undecodable events. A slow
reply notices when the client closes the connection (``abandoned`` counts those).
A slowly streaming model: ``Reply.streaming(chunk_delay=s)`` waits ``s`` between chunks;
``stall_after=k`` sends the first ``k`` chunks and then waits until
``server.unstall()`` (or 10 s), so a test can look at a request mid-stream
(``stalled`` is set while one waits).

Typical use (see the ``openai_server`` fixture in ``tests/conftest.py``)::

    server.enqueue(Reply.error(429, retry_after="0"))   # the next chat request gets a 429
    server.responder = lambda req, seq: [f"answer {seq}"] * req["n"]   # texts by request
    ...
    assert server.count("/v1/chat/completions") == 2

Replies are consumed first from the FIFO ``script`` (one per chat request);
when it is empty the ``responder`` function makes a normal completion from the
request. Every request is recorded in ``server.requests`` (method, path,
headers with lower-case names, parsed JSON body); ``count()`` counts chat requests
(OpenAI or Azure route). ``hold()`` / ``release()`` keep replies waiting so a test can
see how many requests a client has open (``in_flight_now()``, ``max_in_flight``).
``api_key`` makes the server demand that key (401 otherwise, echoing the key sent, so
tests can check that it is scrubbed). Standard library only.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[dict[str, Any], int], list[str]]

_AZURE_CHAT = re.compile(r"^/openai/deployments/([^/]+)/chat/completions$")


def is_chat_path(path: str) -> bool:
    """``/v1/chat/completions`` or Azure's ``/openai/deployments/<name>/chat/completions``."""
    return path == "/v1/chat/completions" or _AZURE_CHAT.match(path) is not None


def default_responder(body: dict[str, Any], seq: int) -> list[str]:
    """``n`` distinct, deterministic texts: request number, choice index, user message."""
    user = ""
    for message in body.get("messages", []):
        if message.get("role") == "user":
            user = str(message.get("content", ""))
    n = int(body.get("n") or 1)
    return [f"reply {seq}.{i} to: {user[:60]}" for i in range(n)]


@dataclass
class Reply:
    """One scripted reply to one chat completions request."""

    status: int = 200
    body: bytes | None = None  # raw body; None = build a completion from the request
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering
    texts: list[str] | None = None  # for status 200 without a raw body
    choices: int | None = None  # return at most this many choices
    usage: bool = True  # include the usage block
    sse: bool = False  # a raw ``body`` sent as text/event-stream
    chunk_delay: float = 0.0  # streamed: seconds between chunks
    stall_after: int | None = None  # streamed: wait for unstall() after this many chunks

    @classmethod
    def ok(
        cls, texts: list[str] | None = None, *, usage: bool = True, choices: int | None = None
    ) -> Reply:
        return cls(texts=texts, usage=usage, choices=choices)

    @classmethod
    def error(
        cls,
        status: int,
        message: str = "scripted error",
        *,
        retry_after: str | None = None,
        code: str | None = None,
    ) -> Reply:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        payload = {"error": {"message": message, "type": "scripted", "code": code}}
        return cls(status=status, body=json.dumps(payload).encode(), headers=headers)

    @classmethod
    def malformed(cls) -> Reply:
        return cls(status=200, body=b'{"id": "chatcmpl-x", "choices": [ {"index": 0, ')

    @classmethod
    def garbage_stream(cls) -> Reply:
        return cls(status=200, body=b"data: {not json at all\n\ndata: [DONE]\n\n", sse=True)

    @classmethod
    def streaming(
        cls,
        texts: list[str] | None = None,
        *,
        chunk_delay: float = 0.0,
        stall_after: int | None = None,
    ) -> Reply:
        return cls(texts=texts, chunk_delay=chunk_delay, stall_after=stall_after)

    @classmethod
    def slow(cls, delay: float, then: Reply | None = None) -> Reply:
        reply = then or cls()
        reply.delay = delay
        return reply


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    json: Any


class OpenAIServer:
    """Threaded stdlib HTTP server bound to an ephemeral port on 127.0.0.1."""

    def __init__(
        self,
        *,
        models: list[str] | None = None,
        api_key: str | None = None,
        responder: Responder | None = None,
        max_choices: int | None = None,
        usage: bool = True,
        models_endpoint: bool = True,
        delay: float = 0.0,
        reasoning: bool = False,
        no_n: bool = False,
        stream_options: bool = True,
        serial: bool = False,
    ) -> None:
        self.reasoning = reasoning
        self.no_n = no_n
        self.stream_options = stream_options
        self.serial = serial
        self.cached_tokens = 0  # prompt tokens reported as served from the cache
        self.always: Reply | None = None  # the reply to every unscripted chat request
        self.abandoned = 0  # slow replies whose client closed the connection first
        self.rejected_busy = 0  # serial mode: requests refused because one was in flight
        self.models = list(models if models is not None else ["test-model"])
        self.api_key = api_key  # when set, requests must send "Authorization: Bearer <key>"
        self.responder: Responder = responder or default_responder
        self.max_choices = max_choices  # emulate servers that ignore or cap n
        self.usage = usage
        self.models_endpoint = models_endpoint
        self.delay = delay  # seconds before each unscripted reply
        # hold() makes chat replies wait (up to 10 s) until release(): lets a test see how
        # many requests a client keeps open at once.
        self._gate = threading.Event()
        self._gate.set()
        self._unstall = threading.Event()
        self.stalled = threading.Event()  # set while a stream waits for unstall()
        self.script: deque[Reply] = deque()
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._seq = 0
        self.in_flight = 0  # chat requests being answered now
        self.max_in_flight = 0  # the most at once (to check client-side concurrency limits)
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control -------------------------------------------------------------
    def start(self) -> OpenAIServer:
        server = self

        class Handler(_Handler):
            owner = server

        self._stopping.clear()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes slow replies
        self._gate.set()  # and held ones
        self._unstall.set()  # and stalled streams
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def hold(self) -> None:
        """Chat replies wait until :meth:`release` (or 10 s)."""
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def unstall(self) -> None:
        """Streams stalled by ``Reply.stall_after`` go on (and later ones do not stall)."""
        self._unstall.set()

    def in_flight_now(self) -> int:
        with self._lock:
            return self.in_flight

    def enqueue(self, *replies: Reply) -> None:
        with self._lock:
            self.script.extend(replies)

    def count(self, path: str | None = None, method: str | None = None) -> int:
        """Requests received on ``path`` (default: chat completions, OpenAI or Azure)."""
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (is_chat_path(r.path) if path is None else r.path == path)
                and (method is None or r.method == method)
            )

    def chat_requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.json for r in self.requests if is_chat_path(r.path)]

    # -- internals -------------------------------------------------------------
    def _record(self, rec: Recorded) -> int:
        with self._lock:
            self.requests.append(rec)
            if is_chat_path(rec.path):
                self._seq += 1
            return self._seq

    def _next_reply(self) -> Reply | None:
        with self._lock:
            return self.script.popleft() if self.script else None

    def _completion(self, body: dict[str, Any], seq: int, reply: Reply) -> bytes:
        texts = self._texts(body, seq, reply)
        payload: dict[str, Any] = {
            "id": f"chatcmpl-test-{seq}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
                for i, text in enumerate(texts)
            ],
        }
        if reply.usage and self.usage:
            payload["usage"] = self._usage(body, texts)
        return json.dumps(payload).encode()

    def _usage(self, body: dict[str, Any], texts: list[str]) -> dict[str, Any]:
        prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
        completion_tokens = sum(len(t.split()) + 1 for t in texts)
        prompt_tokens = prompt_chars // 4 + 7
        usage: dict[str, Any] = {}
        if self.reasoning:
            reasoning = 50 * len(texts)  # hidden thinking, billed as completion tokens
            completion_tokens += reasoning
            usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
        if self.cached_tokens:
            usage["prompt_tokens_details"] = {
                "cached_tokens": min(self.cached_tokens, prompt_tokens)
            }
        usage.update(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        )
        return usage

    def _texts(self, body: dict[str, Any], seq: int, reply: Reply) -> list[str]:
        n = int(body.get("n") or 1)
        texts = reply.texts if reply.texts is not None else self.responder(body, seq)
        limit = reply.choices if reply.choices is not None else self.max_choices
        if limit is not None:
            texts = texts[:limit]
        return texts[:n] if reply.texts is None else texts

    def _events(self, body: dict[str, Any], seq: int, reply: Reply) -> list[bytes]:
        """The server-sent events of a streamed completion (OpenAI's chunk format)."""
        texts = self._texts(body, seq, reply)
        base = {
            "id": f"chatcmpl-test-{seq}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", ""),
        }
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        events: list[dict[str, Any]] = []
        for i, text in enumerate(texts):
            words = re.split(r"(?<= )", text) or [""]
            events.append(
                {**base, "choices": [{"index": i, "delta": {"role": "assistant", "content": ""}}]}
            )
            for word in words:
                events.append({**base, "choices": [{"index": i, "delta": {"content": word}}]})
            events.append({**base, "choices": [{"index": i, "delta": {}, "finish_reason": "stop"}]})
        if include_usage and reply.usage and self.usage:
            events.append({**base, "choices": [], "usage": self._usage(body, texts)})
        return [f"data: {json.dumps(e)}\n\n".encode() for e in events] + [b"data: [DONE]\n\n"]

    def _rejection(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        """The error a provider mode gives this request (real OpenAI bodies), or None."""
        if self.reasoning and "max_tokens" in body:
            return 400, _openai_error(
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
                "max_tokens",
                "unsupported_parameter",
            )
        if self.reasoning and body.get("temperature", 1) != 1:
            return 400, _openai_error(
                f"Unsupported value: 'temperature' does not support {body['temperature']} "
                "with this model. Only the default (1) value is supported.",
                "temperature",
                "unsupported_value",
            )
        if self.no_n and int(body.get("n") or 1) > 1:
            return 400, _openai_error("'n' : number must be at most 1", "n", None)
        if not self.stream_options and "stream_options" in body:
            return 400, _openai_error(
                "[{'type': 'extra_forbidden', 'loc': ('body', 'stream_options'), "
                "'msg': 'Extra inputs are not permitted'}]",
                None,
                None,
            )
        return None


def _openai_error(message: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": code,
        }
    }


class _Handler(BaseHTTPRequestHandler):
    owner: OpenAIServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            self.close_connection = True

    def _send_events(self, events: list[bytes], reply: Reply | None = None) -> None:
        owner = self.owner
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            for sent, event in enumerate(events):
                if reply is not None and sent and sent == reply.stall_after:
                    owner.stalled.set()
                    owner._unstall.wait(timeout=10)
                    owner.stalled.clear()
                elif (
                    reply is not None
                    and sent
                    and reply.chunk_delay > 0
                    and not self._wait(reply.chunk_delay)
                ):
                    break  # the client went away
                self.wfile.write(event)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def _client_gone(self) -> bool:
        """True when the client has closed its end of the connection."""
        import select
        import socket

        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _wait(self, seconds: float) -> bool:
        """Wait ``seconds``; False when the server stops or the client goes away first."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            if self.owner._stopping.wait(min(left, 0.01)):
                return False
            if self._client_gone():
                with self.owner._lock:
                    self.owner.abandoned += 1
                return False

    def _headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}

    def _error(self, status: int, message: str, code: str | None = None) -> None:
        payload = {"error": {"message": message, "type": "invalid_request_error", "code": code}}
        self._send(status, json.dumps(payload).encode())

    def _authorised(self) -> bool:
        key = self.owner.api_key
        if key is None:
            return True
        sent = self.headers.get("Authorization", "")
        if sent == f"Bearer {key}" or self.headers.get("api-key") == key:  # OpenAI / Azure
            return True
        given = sent.removeprefix("Bearer ") or self.headers.get("api-key", "")
        # Echo the presented key, as some servers do, so tests can check redaction.
        self._error(401, f"Incorrect API key provided: {given}", "invalid_api_key")
        return False

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        self.owner._record(Recorded("GET", path, self._headers(), None))
        if not self._authorised():
            return
        if path == "/v1/models" and self.owner.models_endpoint:
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "test"}
                for m in self.owner.models
            ]
            self._send(200, json.dumps({"object": "list", "data": data}).encode())
            return
        self._error(404, f"no route {path}")

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            body = None
        seq = self.owner._record(Recorded("POST", path, self._headers(), body))
        if not self._authorised():
            return
        if not is_chat_path(path):
            self._error(404, f"no route {path}")
            return
        if not isinstance(body, dict):
            self._error(400, "request body is not a JSON object")
            return
        azure = _AZURE_CHAT.match(path)
        if azure is not None:  # Azure names the deployment in the path
            body = {**body, "model": azure.group(1)}
        reply = (
            self.owner._next_reply()
            or (dataclasses.replace(self.owner.always) if self.owner.always else None)
            or Reply(delay=self.owner.delay)
        )
        owner = self.owner
        with owner._lock:
            busy = owner.serial and owner.in_flight > 0
            if busy:
                owner.rejected_busy += 1
        if busy:
            self._error(429, "the server is busy with another request", "busy")
            return
        with owner._lock:
            owner.in_flight += 1
            owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
        try:
            owner._gate.wait(timeout=10)
            self._answer(body, seq, reply)
        finally:
            with owner._lock:
                owner.in_flight -= 1

    def _answer(self, body: dict[str, Any], seq: int, reply: Reply) -> None:
        if reply.delay > 0 and not self._wait(reply.delay):
            self.close_connection = True
            return
        if reply.body is not None and reply.sse:
            self._send_events([reply.body])
            return
        if reply.body is not None:
            self._send(reply.status, reply.body, reply.headers)
            return
        model = str(body.get("model", ""))
        if model not in self.owner.models:
            self._error(404, f"The model `{model}` does not exist", "model_not_found")
            return
        rejection = self.owner._rejection(body)
        if rejection is not None:
            self._send(rejection[0], json.dumps(rejection[1]).encode())
            return
        if body.get("stream") and reply.status == 200:
            self._send_events(self.owner._events(body, seq, reply), reply)
            return
        self._send(reply.status, self.owner._completion(body, seq, reply), reply.headers)
