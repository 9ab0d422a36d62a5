"""Sphinx extension: the configuration and command-line references, generated at build time.

A page that holds ``<!-- stop-tui:settings-reference -->`` gets a table of every
setting, read from the settings model (``stop_tui.config.Settings``; nested models
become their own ``[section]`` tables); ``<!-- stop-tui:cli-reference -->`` gets
every command and option, read from the argparse parser (``stop_tui.cli``). The
Markdown is generated when the page's source is read, before MyST parses it, so
nothing generated is committed and the reference cannot fall behind the code. A
marker that no page fills fails the build.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any

from sphinx.errors import ExtensionError

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # document this checkout, whatever is installed

SETTINGS_MARKER = "<!-- stop-tui:settings-reference -->"
CLI_MARKER = "<!-- stop-tui:cli-reference -->"


def _reading(app: Any, env: Any, docnames: list[str]) -> None:
    app.stop_full_read = set(docnames) >= set(env.found_docs)
    app.stop_filled = set()


def _fill(app: Any, docname: str, source: list[str]) -> None:
    for marker, generate in ((SETTINGS_MARKER, settings_reference), (CLI_MARKER, cli_reference)):
        if marker in source[0]:
            source[0] = source[0].replace(marker, generate())
            app.stop_filled.add(marker)


def _check(app: Any, env: Any) -> None:
    missing = {SETTINGS_MARKER, CLI_MARKER} - app.stop_filled
    if app.stop_full_read and missing:
        raise ExtensionError(f"reference markers not found in any page: {', '.join(missing)}")


def setup(app: Any) -> dict[str, Any]:
    app.connect("env-before-read-docs", _reading)
    app.connect("source-read", _fill)
    app.connect("env-updated", _check)
    return {"parallel_read_safe": False, "parallel_write_safe": True}


# ------------------------------------------------------------------ settings


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def type_name(annotation: Any) -> str:
    """A reader's name for a field type: ``int``, ``float or unset``, ``one of "a", "b"``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        names = [type_name(a) for a in args if a is not type(None)]
        text = " or ".join(names)
        return f"{text} or unset" if type(None) in args else text
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is not None:
        inner = ", ".join(type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if isinstance(annotation, type):
        return {"SecretStr": "secret string", "Path": "path", "PosixPath": "path"}.get(
            annotation.__name__, annotation.__name__
        )
    return str(annotation)


def _default(field: Any) -> str:
    from pydantic import BaseModel

    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, Path):
        return f"`{value}`"
    try:
        return f"`{json.dumps(value)}`"
    except TypeError:
        return f"`{value}`"


def _limits(field: Any) -> str:
    words = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}
    parts = []
    for item in field.metadata:
        for attr, sign in words.items():
            bound = getattr(item, attr, None)
            if bound is not None:
                parts.append(f"{sign} {bound}")
    return ", ".join(parts)


def _is_model(annotation: Any) -> bool:
    from pydantic import BaseModel

    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def settings_reference() -> str:
    from stop_tui import config

    model = config.Settings
    prefix = getattr(config, "ENV_PREFIX", "") or model.model_config.get("env_prefix", "")
    nested = model.model_config.get("env_nested_delimiter") or "__"
    standard: dict[str, list[str]] = {}
    for var, key in getattr(config, "STANDARD_ENV", {}).items():
        standard.setdefault(key, []).append(var)
    filename = getattr(config, "CONFIG_FILENAME", "stop.toml")

    out: list[str] = []

    def table(cls: Any, path: tuple[str, ...]) -> None:
        title = "[" + ".".join(path) + "]" if path else "top level"
        doc = (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        out.append(f"### {title}\n")
        if doc and path:
            out.append(f"{doc}\n")
        rows, sections = [], []
        for name, field in cls.model_fields.items():
            if _is_model(field.annotation):
                sections.append((name, field.annotation))
                continue
            dotted = ".".join((*path, name))
            env = [f"`{prefix}{nested.join((*path, name)).upper()}`"]
            env += [
                f"`{v}`" for v in standard.get(dotted, standard.get(name, []) if not path else [])
            ]
            limits = _limits(field)
            kind = type_name(field.annotation) + (f" ({limits})" if limits else "")
            rows.append(
                f"| `{name}` | {_cell(kind)} | {_cell(_default(field))} | {', '.join(env)} "
                f"| {_cell(field.description or '')} |"
            )
        if rows:
            out.append("| key | type | default | environment | description |")
            out.append("| --- | --- | --- | --- | --- |")
            out.extend(rows)
            out.append("")
        for name, sub in sections:
            table(sub, (*path, name))

    out.append(
        f"Every key below can be set in `{filename}` (nested sections as TOML tables), "
        "in the environment variable shown, or, for the run settings, with the command-line "
        "flag of the same name (see the [command-line reference](cli.md)). "
        "This table is generated from the settings model when the documentation is built.\n"
    )
    table(model, ())
    return "\n".join(out)


# ------------------------------------------------------------------------ cli


def _option_row(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    formatter = parser._get_formatter()
    if action.option_strings:
        names = ", ".join(f"`{o}`" for o in action.option_strings)
        if action.nargs != 0:
            names += f" `{formatter._format_args(action, action.dest.upper())}`"
    else:
        names = f"`{formatter._format_args(action, action.dest)}`"
    text = formatter._expand_help(action) if action.help else ""
    if action.choices and not isinstance(action, argparse._SubParsersAction):
        text += " (" + ", ".join(f"`{c}`" for c in action.choices) + ")"
    return f"| {_cell(names)} | {_cell(text)} |"


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                found.append((name, helps.get(name, ""), sub))
    return found


def cli_reference() -> str:
    from stop_tui.cli import build_parser

    os.environ.setdefault("COLUMNS", "100")
    parser = build_parser()
    out = [
        "Generated from the command-line parser when the documentation is built; "
        "`stop-tui COMMAND --help` prints the same.\n",
        "```text",
        parser.format_usage().strip(),
        "```\n",
        "| command | what it does |",
        "| --- | --- |",
    ]
    commands = _subcommands(parser)
    out += [f"| [`{name}`](#stop-tui-{name}) | {_cell(text)} |" for name, text, _ in commands]
    out.append("")
    for name, text, sub in commands:
        out.append(f"## stop-tui {name}\n")
        if sub.description or text:
            out.append(f"{sub.description or text}\n")
        out += ["```text", sub.format_usage().strip(), "```\n"]
        groups = [g for g in sub._action_groups if g._group_actions]
        for group in groups:
            rows = [
                _option_row(sub, a) for a in group._group_actions if a.help != argparse.SUPPRESS
            ]
            if not rows:
                continue
            out.append(f"**{group.title}**\n")
            out += ["| argument | meaning |", "| --- | --- |", *rows, ""]
    return "\n".join(out)
