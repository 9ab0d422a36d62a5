"""Settings: ``stop.toml``, environment variables and command-line flags.

Precedence, lowest to highest:

1. built-in defaults;
2. the config file: ``config_file`` if given, else ``./stop.toml`` in the working
   directory, else ``stop.toml`` in the user config directory
   (``platformdirs.user_config_dir("stop-tui")``, e.g. ``~/.config/stop-tui/``);
3. environment variables: the standard ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``,
   ``OPENAI_ORG_ID`` / ``OPENAI_ORGANIZATION``, ``AZURE_OPENAI_ENDPOINT``,
   ``AZURE_OPENAI_API_KEY``, ``OPENAI_API_VERSION``, then ``STOP_TUI_<FIELD>``
   (e.g. ``STOP_TUI_MODEL``, ``STOP_TUI_MAX_COST``), which win over the standard ones;
4. command-line flags, passed to :func:`load_settings` as a dict of overrides
   (``None`` values are ignored, so unset flags do not override).

Every problem becomes one :class:`~stop_tui.errors.UserError` line that names the
key, where it came from (file path, environment variable, or command line) and
the fix.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from stop_tui.errors import UserError, read_text
from stop_tui.keymap import check_keymap
from stop_tui.settings_shape import (
    AT_LEAST_ONE,
    DEFAULT_MAX_COST,
    DEFAULT_MAX_TOKENS,
    SECTIONS,
    Policy,
    cli_options,
    form_fields,
    run_field,
)

if TYPE_CHECKING:
    from stop_tui.lm.types import Backend, ProgressHook

__all__ = [
    "CONFIG_FILENAME",
    "DEFAULT_MAX_COST",
    "DEFAULT_MAX_TOKENS",
    "ENV_PREFIX",
    "SECTIONS",
    "Policy",
    "Settings",
    "cli_options",
    "find_config_file",
    "form_fields",
    "load_settings",
    "make_backend",
    "make_monitor_backend",
    "make_run_backend",
]

CONFIG_FILENAME = "stop.toml"

ENV_PREFIX = "STOP_TUI_"


# Standard variables other tools use too; STOP_TUI_* wins over them.
STANDARD_ENV: dict[str, str] = {
    "OPENAI_API_KEY": "api_key",
    "AZURE_OPENAI_API_KEY": "api_key",
    "OPENAI_BASE_URL": "base_url",
    "OPENAI_ORG_ID": "organization",
    "OPENAI_ORGANIZATION": "organization",
    "AZURE_OPENAI_ENDPOINT": "azure_endpoint",
    "OPENAI_API_VERSION": "azure_api_version",
}

# STOP_TUI_* variables that are not settings (other parts of the program read them).
NON_SETTING_ENV: set[str] = {
    "STOP_TUI_SANDBOX_DISABLE",  # switch isolation layers off for debugging (stop_tui.sandbox)
    "STOP_TUI_SANDBOX_DEBUG",
    "STOP_TUI_SNAPSHOT",  # stable screens for the TUI's snapshot tests
}


_CLUSTER_ADDRESS = re.compile(
    r"^(ray://)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9][A-Za-z0-9.\-]*):(\d{1,5})$"
)


def parse_cluster(value: str | None) -> str:
    """Check a ``cluster`` setting; return it normalised (``""``: this machine).

    ``local`` or empty: this machine's sandbox. ``ray``: ``RAY_ADDRESS`` or a new
    local Ray instance. ``ray://HOST:PORT`` (Ray client) or ``HOST:PORT`` (a node
    of the cluster): an existing cluster.
    """
    text = (value or "").strip()
    if text in ("", "local"):
        return ""
    if text == "ray":
        return "ray"
    match = _CLUSTER_ADDRESS.match(text)
    if match is None or not 0 < int(match.group(3)) < 65536:
        raise UserError(
            f"cluster address {text!r} is not understood",
            hint="use --cluster ray, --cluster ray://HOST:PORT or --cluster HOST:PORT",
        )
    return text


class Settings(BaseSettings):
    """All settings of a run. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(extra="forbid", validate_default=True)

    # -- the language model --------------------------------------------------
    model: str = run_field("model")
    base_url: str | None = run_field("base_url")
    api_key: SecretStr | None = Field(default=None, description="API key (never stored).")
    organization: str | None = Field(default=None, description="OpenAI organization id.")
    azure_endpoint: str | None = Field(default=None, description="Azure OpenAI endpoint URL.")
    azure_api_version: str | None = Field(
        default=None, description='Azure API version, e.g. "2024-10-21".'
    )
    azure_deployment: str | None = Field(
        default=None, description="Azure deployment (default: the model name)."
    )
    timeout: float = Field(
        default=120.0,
        gt=0,
        description="Seconds a request may wait for the endpoint's next data once sent (time "
        "queued is not counted; a streaming answer may go on up to 10 times this); then it "
        "is cancelled, its connection closed, and retried.",
    )
    #: 4096: an improver or solution in the paper is a few hundred lines (~3,000 tokens
    #: at most); 4096 leaves room for the explanation around the code, while a small
    #: local model that never stops can not fill a whole context window (8k+ tokens,
    #: minutes of generation) on every request.
    max_tokens: int | None = run_field("max_tokens", ge=1)
    max_concurrency: int | None = Field(
        default=None,
        ge=1,
        description="Requests in flight at once per endpoint; more queue. Unset: 1 for a "
        "server on this machine (127.0.0.1, localhost), 4 otherwise.",
    )
    stream: bool = Field(
        default=True,
        description="Stream responses (a timed-out request is cancelled at once); "
        "false for servers that cannot stream.",
    )
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = Field(
        default=None,
        description="Sent as reasoning_effort to reasoning models (left out if rejected).",
    )
    max_retries: int = Field(default=5, ge=0, description="Retries per request.")
    retry_base_delay: float = Field(
        default=1.0, ge=0, description="Seconds before the first retry (doubles each time)."
    )
    retry_max_delay: float = Field(default=30.0, ge=0, description="Longest wait between retries.")
    prices: dict[str, tuple[float, float] | tuple[float, float, float]] = Field(
        default_factory=dict,
        description="Model -> [prompt, completion] or [prompt, completion, cached prompt] "
        "dollars per 1M tokens; extends and overrides the built-ins.",
    )

    # -- run-wide caps (None = no cap; "none" in stop.toml / the environment / a flag) -------
    max_calls: int | None = run_field("max_calls", ge=0)
    max_tokens_total: int | None = run_field("max_tokens_total", ge=0)
    max_cost: float | None = run_field("max_cost", ge=0)
    # -- per request ---------------------------------------------------------------
    max_prompt_chars: int = run_field("max_prompt_chars", ge=1)

    # -- where runs go ---------------------------------------------------------------
    workspace: Path = Field(default=Path("stop-runs"), description="The runs' git workspace.")
    cluster: str = run_field("cluster")

    # -- the STOP budgets (the paper's reference configuration) ------------------------
    task: str = run_field("task")
    generations: int = run_field("generations", ge=1)
    max_responses_per_call: int = run_field("max_responses_per_call", ge=1)
    lm_budget: int = run_field("lm_budget", ge=1)
    utility_budget: int = run_field("utility_budget", ge=1)
    meta_utility_budget: int = run_field("meta_utility_budget", ge=1)
    meta_utility_tests: int = run_field("meta_utility_tests", ge=1)
    seed: int = run_field("seed")
    approval: Policy | None = Field(
        default=None,
        description="Who approves generated improvers (unset: the app asks about every "
        "candidate; headless runs approve automatically, still audited).",
    )
    # The demo backend's knobs (ignored by real endpoints).
    demo_failure_rate: float = run_field("demo_failure_rate", ge=0, le=1)
    demo_no_code_rate: float = Field(
        default=0.05, ge=0, le=1, description="Share of demo answers without code."
    )
    demo_latency: float = run_field("demo_latency", ge=0)
    # -- the monitor model: a second opinion before each approval (docs/approvals-audit.md) --
    monitor_model: str = run_field("monitor_model")
    monitor_base_url: str | None = run_field("monitor_base_url")
    monitor_api_key: SecretStr | None = Field(
        default=None, description="The monitor endpoint's API key (unset: the run's; never stored)."
    )
    monitor_timeout: float = Field(
        default=60.0, gt=0, description='Seconds per monitor note (then "monitor unavailable").'
    )
    monitor_max_tokens: int = Field(default=400, ge=1, description="Tokens of one monitor note.")
    # The app's keys: binding id -> key(s), e.g. [keymap] approval.approve = "y".
    keymap: dict[str, str] = Field(
        default_factory=dict,
        description="Binding id -> key(s) of the app (docs/app.md: Your own keys).",
    )

    @field_validator(*AT_LEAST_ONE, mode="before")
    @classmethod
    def _at_least_one(cls, value: Any) -> Any:
        # one message for every front end (ge=1 stays on the field for the reference)
        try:
            small = int(value) < 1 and not isinstance(value, bool)
        except (TypeError, ValueError):
            return value  # not a number: the type check says so
        if small:
            raise ValueError("must be a whole number of at least 1")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings merges file, environment and flags itself (so that every
        # error can name its source); only the merged values come in.
        return (init_settings,)

    @field_validator("cluster", mode="before")
    @classmethod
    def _cluster(cls, value: Any) -> Any:
        return parse_cluster(value) if isinstance(value, str) or value is None else value

    @field_validator("prices", mode="before")
    @classmethod
    def _prices(cls, value: Any) -> Any:
        # Accept {"model": {"prompt": 1.0, "completion": 2.0}} as well as [1.0, 2.0].
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for name, price in value.items():
                if isinstance(price, Mapping):
                    unknown = set(price) - {"prompt", "completion", "cached"}
                    if unknown or {"prompt", "completion"} - set(price):
                        raise ValueError(
                            f"price of {name!r} needs 'prompt' and 'completion', and may "
                            "have 'cached' (dollars per 1M tokens)"
                        )
                    parts = [price["prompt"], price["completion"]]
                    if "cached" in price:
                        parts.append(price["cached"])
                    out[str(name)] = tuple(parts)
                else:
                    out[str(name)] = price
            return out
        return value

    @field_validator("keymap", mode="before")
    @classmethod
    def _keymap(cls, value: Any) -> dict[str, str]:
        return check_keymap(value)

    @field_validator("max_calls", "max_tokens_total", "max_cost", mode="before")
    @classmethod
    def _no_cap(cls, value: Any) -> Any:
        # "none" switches a cap off explicitly (also the default max_cost of priced models).
        if isinstance(value, str) and value.strip().lower() in ("none", "off"):
            return None
        return value

    @field_validator("base_url", "azure_endpoint", "monitor_base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if not self.model:
            if self.base_url or self.api_key or self.azure_endpoint:
                raise ValueError(
                    "no model is set but an endpoint or API key is: set model "
                    '(e.g. model = "gpt-4o-mini" in stop.toml, STOP_TUI_MODEL or --model), '
                    'or model = "demo" for the offline demo'
                )
            self.model = "demo"
        if self.azure_endpoint and not self.azure_api_version and self.model != "demo":
            raise ValueError(
                "azure_endpoint is set but azure_api_version is not: set it "
                '(e.g. azure_api_version = "2024-10-21") or OPENAI_API_VERSION'
            )
        from stop_tui.lm.pricing import price_of

        price = price_of(self.model, self.prices) if self.model != "demo" else None
        if "max_cost" not in self.model_fields_set and price is not None and max(price) > 0:
            self.max_cost = DEFAULT_MAX_COST
            self.model_fields_set.discard("max_cost")  # a default, not the user's choice
        for name in (self.model, self.monitor_model):  # the monitor's calls count too
            unpriced = name not in ("", "demo") and price_of(name, self.prices) is None
            if self.max_cost is not None and unpriced:
                raise ValueError(
                    f"max_cost is set but the price of model {name!r} is unknown: "
                    f'add it to [prices] in stop.toml ("{name}" = '
                    "{ prompt = ..., completion = ... }, dollars per 1M tokens)"
                )
        return self

    def redacted(self) -> dict[str, Any]:
        """The settings as plain values, API key shown as ``***`` (for display/logs)."""
        data = self.model_dump(mode="json")
        data["api_key"] = "***" if self.api_key is not None else None
        data["monitor_api_key"] = "***" if self.monitor_api_key is not None else None
        return data


def find_config_file(cwd: Path | None = None) -> Path | None:
    """``./stop.toml``, else the user config dir's ``stop.toml``, else None."""
    here = (cwd or Path.cwd()) / CONFIG_FILENAME
    if here.is_file():
        return here
    import platformdirs

    user = Path(platformdirs.user_config_dir("stop-tui")) / CONFIG_FILENAME
    if user.is_file():
        return user
    return None


_FIELDS = Settings.model_fields
_COMPLEX = {"prices", "keymap"}


def _read_file(path: Path) -> dict[str, Any]:
    missing = f"config file {path} does not exist"
    text = read_text(path, "config file", missing, "check the path given to --config")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"config file {path} is not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in SECTIONS and isinstance(value, dict):
            for sub, inner in value.items():
                if sub not in SECTIONS[key]:
                    home = next((name for name, keys in SECTIONS.items() if sub in keys), None)
                    raise UserError(
                        f"unknown setting '{sub}' in [{key}] of {path}",
                        hint=f"'{sub}' belongs in [{home}]"
                        if home
                        else _suggest(sub) + "see docs/configuration.md for the settings",
                    )
                if sub in data:
                    raise UserError(f"'{sub}' is set twice in {path}: at the top and in [{key}]")
                values[sub] = inner
        elif key in _FIELDS:
            values[key] = value  # the flat form: every key of a section also works at the top
        else:
            raise UserError(
                f"unknown setting '{key}' in {path}",
                hint=_suggest(key) + "see docs/configuration.md for the settings",
            )
    return values


def _read_env(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for var, field in STANDARD_ENV.items():
        if environ.get(var) and field not in origin:
            values[field] = environ[var]
            origin[field] = f"environment variable {var}"
    for var, raw in environ.items():
        if not var.startswith(ENV_PREFIX) or var in NON_SETTING_ENV:
            continue
        field = var[len(ENV_PREFIX) :].lower()
        if field not in _FIELDS:
            raise UserError(
                f"unknown setting in environment variable {var}",
                hint=_suggest(field, prefix=ENV_PREFIX) + "unset it or fix its name",
            )
        value: Any = raw
        if field in _COMPLEX:
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                raise UserError(
                    f"environment variable {var} must be JSON, e.g. '{{\"my-model\": [0.5, 1.5]}}'"
                ) from None
        elif raw == "" and _FIELDS[field].default is None:
            value = None
        values[field] = value
        origin[field] = f"environment variable {var}"
    return values, origin


def _suggest(key: str, prefix: str = "") -> str:
    import difflib

    close = difflib.get_close_matches(key.lower(), list(_FIELDS), n=1, cutoff=0.6)
    return f"did you mean '{prefix}{close[0].upper() if prefix else close[0]}'? " if close else ""


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    config_file: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Merge defaults < config file < environment < ``overrides`` and validate.

    Raises :class:`UserError` (one line) on an unknown key, a wrong type, or an
    inconsistent configuration (e.g. an endpoint without a model).
    """
    env = os.environ if environ is None else environ
    path = config_file if config_file is not None else find_config_file(cwd)
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    if path is not None:
        for key, value in _read_file(Path(path)).items():
            merged[key] = value
            origin[key] = str(path)
    env_values, env_origin = _read_env(env)
    merged.update(env_values)
    origin.update(env_origin)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in _FIELDS:
            raise UserError(
                f"unknown setting '{key}' on the command line",
                hint=_suggest(key) + "see 'stop-tui --help'",
            )
        merged[key] = value
        origin[key] = "the command line"
    if not merged.get("model"):
        configured = [k for k in ("base_url", "api_key", "azure_endpoint") if merged.get(k)]
        if configured:
            first = configured[0]
            raise UserError(
                f"no model is set, but {first} is (from {origin[first]})",
                hint='set model, e.g. model = "gpt-4o-mini" in stop.toml, STOP_TUI_MODEL or '
                '--model; or model = "demo" for the offline demo',
            )
    try:
        return Settings(**merged)
    except ValidationError as exc:
        raise _user_error(exc, origin, merged) from None


def _user_error(
    exc: ValidationError, origin: Mapping[str, str], merged: Mapping[str, Any]
) -> UserError:
    error = exc.errors(include_url=False)[0]
    loc = [str(part) for part in error.get("loc", ()) if part != "__root__"]
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if not loc:
        return UserError(message)
    field = loc[0]
    where = origin.get(field, "the defaults")
    shown = (
        "" if field in ("api_key", "monitor_api_key", "keymap") else f" {_short(merged.get(field))}"
    )
    detail = ".".join(loc[1:])
    name = f"{field}.{detail}" if detail else field
    return UserError(f"invalid value{shown} for '{name}' from {where}: {message}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def make_backend(
    settings: Settings,
    *,
    on_retry: Callable[[dict[str, Any]], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
    on_progress: ProgressHook | None = None,
) -> Backend:
    """The settings' backend: the demo for model "demo", else an OpenAIBackend with these hooks."""
    if settings.model == "demo":
        try:
            import importlib

            demo = importlib.import_module("stop_tui.lm.demo")
        except ImportError as exc:
            raise UserError(
                f"the demo backend is not available in this installation ({exc})",
                hint="set model and base_url or OPENAI_API_KEY to use a real endpoint",
            ) from None
        demo_backend: Backend = demo.DemoBackend(
            seed=settings.seed,
            failure_rate=settings.demo_failure_rate,
            no_code_rate=settings.demo_no_code_rate,
            latency=settings.demo_latency,
        )
        return demo_backend
    from stop_tui.lm.openai_backend import OpenAIBackend, RetryPolicy
    from stop_tui.lm.types import FatalLMError

    try:
        return OpenAIBackend(
            settings.model,
            api_key=settings.api_key.get_secret_value() if settings.api_key else None,
            base_url=settings.base_url,
            organization=settings.organization,
            azure_endpoint=settings.azure_endpoint,
            azure_api_version=settings.azure_api_version,
            azure_deployment=settings.azure_deployment,
            timeout=settings.timeout,
            max_tokens=settings.max_tokens,
            max_concurrency=settings.max_concurrency,
            stream=settings.stream,
            reasoning_effort=settings.reasoning_effort,
            retry=RetryPolicy(
                max_retries=settings.max_retries,
                base_delay=settings.retry_base_delay,
                max_delay=settings.retry_max_delay,
            ),
            prices=settings.prices,
            on_retry=on_retry,
            on_notice=on_notice,
            on_progress=on_progress,
        )
    except FatalLMError as exc:
        raise UserError(str(exc)) from None


def make_monitor_backend(
    settings: Settings, *, on_notice: Callable[[str], None] | None = None
) -> Backend | None:
    """The monitor's own backend: its endpoint and key when set, else the run's; one retry at
    most. None: no monitor, or the run's backend serves it (the same model and endpoint)."""
    name = settings.monitor_model
    if not name or (name == settings.model and settings.monitor_base_url is None):
        return None
    changes: dict[str, Any] = {"model": name, "timeout": settings.monitor_timeout}
    changes["max_retries"] = min(settings.max_retries, 1)
    if settings.monitor_base_url is not None:
        changes |= {"base_url": settings.monitor_base_url, "azure_endpoint": None}
    if settings.monitor_api_key is not None:
        changes["api_key"] = settings.monitor_api_key
    return make_backend(settings.model_copy(update=changes), on_notice=on_notice)


def make_run_backend(
    settings: Settings,
    transcript: Path,
    *,
    replay_from: Path | None = None,
    resume: bool = False,
    on_retry: Callable[[dict[str, Any]], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
    on_progress: ProgressHook | None = None,
) -> Backend:
    """The backend of one run, recording to ``transcript``.

    * default: the live backend (:func:`make_backend`), every request recorded;
    * ``replay_from``: serve the run from that transcript only (offline; a request
      it does not hold raises ReplayDivergence); nothing live, nothing recorded;
    * ``resume=True``: serve what ``transcript`` already holds, go live for the rest,
      and append the new requests to the same transcript.
    """
    from stop_tui.lm.monitor_route import with_monitor
    from stop_tui.lm.replay import ReplayBackend
    from stop_tui.lm.transcript import RecordingBackend
    from stop_tui.lm.types import LMError

    try:
        if replay_from is not None:
            return ReplayBackend(replay_from)
        live = make_backend(
            settings, on_retry=on_retry, on_notice=on_notice, on_progress=on_progress
        )
        live = with_monitor(live, make_monitor_backend(settings, on_notice=on_notice))
        reading = ReplayBackend(transcript) if resume and transcript.exists() else None
        recorder = RecordingBackend(live, transcript)  # after the read: it appends
        if reading is None:
            return recorder
        reading.fallback = recorder
        reading.name = f"resume:{recorder.name}"
        return reading
    except LMError as exc:
        raise UserError(str(exc)) from None
