"""Check a configured endpoint (for ``stop-tui doctor``).

:func:`check_endpoint` answers: is the endpoint reachable, is the key accepted, is
the model available (from ``GET /models`` where the server has it), does the
server honour ``n`` (one completion with ``n=2``, ``max_tokens=1``: the choices are
counted), and how long one round trip takes. It spends at most two tiny
completions (the second only when the server rejects ``n=2``). No retries: a
check reports what it sees. The API key never appears in the report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import openai

from stop_tui.lm.openai_backend import error_text

__all__ = ["CheckRow", "EndpointReport", "EndpointSettings", "check_endpoint"]


class _Secret(Protocol):
    def get_secret_value(self) -> str: ...


class EndpointSettings(Protocol):
    """What the check reads of the settings (``stop_tui.config.Settings`` has all of it;
    the settings sit above this layer, so the check names only what it needs)."""

    @property
    def model(self) -> str: ...
    @property
    def api_key(self) -> _Secret | None: ...
    @property
    def base_url(self) -> str | None: ...
    @property
    def organization(self) -> str | None: ...
    @property
    def azure_endpoint(self) -> str | None: ...
    @property
    def azure_api_version(self) -> str | None: ...
    @property
    def azure_deployment(self) -> str | None: ...
    @property
    def timeout(self) -> float: ...


Status = Literal["ok", "warn", "fail", "skip"]


@dataclass(frozen=True)
class CheckRow:
    check: str
    status: Status
    detail: str


@dataclass
class EndpointReport:
    endpoint: str
    model: str
    reachable: bool | None = None
    key_accepted: bool | None = None
    model_available: bool | None = None
    n_honoured: bool | None = None
    latency: float | None = None
    models: list[str] = field(default_factory=list)
    rows: list[CheckRow] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when a run can use the endpoint (n need not be honoured)."""
        return bool(self.reachable and self.key_accepted and self.model_available)

    def add(self, check: str, status: Status, detail: str) -> None:
        self.rows.append(CheckRow(check, status, detail))

    def as_rows(self) -> list[tuple[str, str, str]]:
        """``(check, status, detail)`` rows for a table."""
        return [(r.check, r.status, r.detail) for r in self.rows]


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret and len(secret) >= 4 else text


async def check_endpoint(
    settings: EndpointSettings, *, timeout: float | None = None
) -> EndpointReport:
    """Probe the endpoint the settings describe. Never raises for endpoint problems."""
    secret = settings.api_key.get_secret_value() if settings.api_key else ""
    where = settings.azure_endpoint or settings.base_url or "https://api.openai.com/v1"
    report = EndpointReport(endpoint=where, model=settings.model)
    if settings.model == "demo":
        report.reachable = report.key_accepted = report.model_available = True
        report.n_honoured = True
        report.add("endpoint", "skip", "model 'demo': the offline scripted backend, no endpoint")
        return report
    if not secret and settings.base_url is None and settings.azure_endpoint is None:
        report.add("key", "fail", "no API key: set OPENAI_API_KEY, or base_url for a local server")
        report.key_accepted = False
        return report
    limit = timeout if timeout is not None else min(settings.timeout, 30.0)
    client: openai.AsyncOpenAI
    if settings.azure_endpoint:
        client = openai.AsyncAzureOpenAI(
            azure_endpoint=settings.azure_endpoint,
            api_version=settings.azure_api_version,
            azure_deployment=settings.azure_deployment or settings.model,
            api_key=secret or None,
            timeout=limit,
            max_retries=0,
        )
    else:
        client = openai.AsyncOpenAI(
            api_key=secret or "no-key",
            base_url=settings.base_url,
            organization=settings.organization,
            timeout=limit,
            max_retries=0,
        )
    try:
        await _run_checks(client, settings, report, secret)
    finally:
        await client.close()
    return report


async def _run_checks(
    client: openai.AsyncOpenAI, settings: EndpointSettings, report: EndpointReport, secret: str
) -> None:
    model = settings.model
    # 1. GET /models: reachability, key, model listing.
    listed = False
    try:
        page = await client.models.list()
        report.models = sorted(m.id for m in page.data)
        report.reachable = True
        report.key_accepted = True
        listed = True
        report.add("endpoint", "ok", f"{report.endpoint} answers")
        report.add("key", "ok", "accepted" if secret else "none needed")
        if model in report.models:
            report.model_available = True
            report.add("model", "ok", f"{model!r} is listed")
        else:
            shown = ", ".join(report.models[:8]) + (" ..." if len(report.models) > 8 else "")
            report.add("model", "warn", f"{model!r} is not listed (listed: {shown or 'none'})")
    except openai.AuthenticationError as exc:
        report.reachable = True
        report.key_accepted = False
        report.add("endpoint", "ok", f"{report.endpoint} answers")
        report.add(
            "key", "fail", f"rejected (HTTP 401: {_scrub(_msg(exc), secret)}); check OPENAI_API_KEY"
        )
        return
    except openai.APIStatusError:
        report.reachable = True  # no /models here (some servers): try a completion
    except openai.APIConnectionError as exc:
        report.reachable = False
        kind = "timed out" if isinstance(exc, openai.APITimeoutError) else "cannot connect"
        report.add(
            "endpoint",
            "fail",
            f"{report.endpoint}: {kind}; check base_url and that the server is running",
        )
        return
    except Exception as exc:  # an odd body: note it and go on to the completion
        report.reachable = True
        report.add(
            "models", "warn", f"GET /models gave an unreadable answer ({type(exc).__name__})"
        )

    # 2. One tiny completion with n=2: model, key (if unlisted), n, latency.
    messages: list[Any] = [
        {"role": "system", "content": "Reply with one word."},
        {"role": "user", "content": "Say OK."},
    ]
    for n in (2, 1):
        start = time.monotonic()
        try:
            response = await client.chat.completions.create(
                model=model, messages=messages, n=n, max_tokens=1, temperature=0.0
            )
        except openai.AuthenticationError as exc:
            report.key_accepted = False
            report.add(
                "key",
                "fail",
                f"rejected (HTTP 401: {_scrub(_msg(exc), secret)}); check OPENAI_API_KEY",
            )
            return
        except openai.NotFoundError as exc:
            report.model_available = False
            if not listed:
                report.add("endpoint", "ok", f"{report.endpoint} answers")
            report.rows = [r for r in report.rows if r.check != "model"]
            report.add(
                "model",
                "fail",
                f"{model!r} not found (HTTP 404: "
                f"{_scrub(_msg(exc), secret)}); check the model name and base_url",
            )
            return
        except openai.BadRequestError as exc:
            if n == 2:
                report.n_honoured = False
                report.add(
                    "n",
                    "warn",
                    "the server rejects n=2 "
                    f"({_scrub(_msg(exc), secret)}); samples will be separate requests",
                )
                continue
            report.add("completion", "fail", f"rejected (HTTP 400: {_scrub(_msg(exc), secret)})")
            return
        except openai.APIStatusError as exc:
            report.add("completion", "fail", f"HTTP {exc.status_code}: {_scrub(_msg(exc), secret)}")
            return
        except openai.APIConnectionError as exc:
            report.reachable = report.reachable or False
            kind = "timed out" if isinstance(exc, openai.APITimeoutError) else "connection failed"
            report.add("completion", "fail", f"{kind}")
            return
        except Exception as exc:
            report.add("completion", "fail", f"unreadable answer ({type(exc).__name__})")
            return
        report.latency = time.monotonic() - start
        report.reachable = True
        if report.key_accepted is None:
            report.key_accepted = True
            report.add("endpoint", "ok", f"{report.endpoint} answers (no GET /models)")
            report.add("key", "ok", "accepted" if secret else "none needed")
        if not report.model_available:
            report.model_available = True
            report.rows = [r for r in report.rows if r.check != "model"]
            report.add("model", "ok", f"{model!r} answers a completion")
        if n == 2:
            got = len(response.choices or [])
            report.n_honoured = got >= 2
            if report.n_honoured:
                report.add("n", "ok", "n=2 gives 2 choices")
            else:
                report.add(
                    "n",
                    "warn",
                    f"n=2 gave {got} choice(s); missing samples will be "
                    "fetched as separate requests (slower, same cost)",
                )
        report.add("latency", "ok", f"{report.latency:.2f}s for a 1-token completion")
        return


def _msg(exc: openai.APIStatusError) -> str:
    return error_text(exc, 200, dump_body=False)
