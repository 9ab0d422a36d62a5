"""The app's keys as data, and the check of a user's ``[keymap]``.

Every key binding of the app has an id (``run.pause``, ``approval.approve``...), its
default key(s), the action it runs and what it says in the footer, grouped by the screen
it belongs to (``SCOPES``). ``stop_tui.tui.bindings`` turns these into Textual bindings;
:func:`check_keymap` validates the ``[keymap]`` table of ``stop.toml`` (binding id ->
key or keys) at load. No Textual here: the settings, which sit below the front ends,
validate a keymap with it.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["RESERVED", "SCOPES", "KeySpec", "binding_ids", "check_keymap", "label"]


@dataclass(frozen=True)
class KeySpec:
    """One binding: ``key`` is Textual's key string (``"f5,ctrl+r"``: either key)."""

    id: str
    key: str
    action: str
    description: str
    show: bool = True
    display: str | None = None  # how the footer shows the default key ("?" for question_mark)
    tooltip: str = ""


K = KeySpec

#: The bindings of each screen ("app": everywhere). A scope may reuse an id of another
#: scope (the help screen closes with the key that opens it): one id, one key.
SCOPES: dict[str, tuple[KeySpec, ...]] = {
    "app": (
        K("app.help", "question_mark", "help", "Help", display="?"),
        K("app.theme", "ctrl+t", "change_theme", "Theme"),
        K("app.quit", "q", "quit", "Quit"),
    ),
    "home": (
        K("home.new", "n", "new_run", "New"),
        K("home.open", "o", "open", "Open", tooltip="open the selected run (or press enter)"),
        K("home.resume", "r", "resume", "Resume"),
        K("home.replay", "p", "replay", "Replay"),
        K("home.history", "h", "history", "History"),
        K("home.export_json", "e", "export('json')", "JSON"),
        K("home.export_csv", "c", "export('csv')", "CSV"),
        K("home.refresh", "f5,ctrl+r", "refresh", "Refresh", show=False, display="F5"),
    ),
    "new": (
        K("new.start", "ctrl+s", "start", "Start run"),
        K("new.cancel", "escape", "cancel", "Cancel"),
    ),
    "run": (
        K("run.pause", "space", "pause", "Pause", tooltip="pause the run; space again resumes it"),
        K("run.stop", "x", "stop", "Stop"),
        K("run.approvals", "a", "approvals", "Approvals"),
        K("run.improver", "i", "improver", "Improver", tooltip="or enter on a generation"),
        K("run.history", "h", "history", "History"),
        K("run.resume", "r", "resume_run", "Resume run"),
        K("run.replay", "p", "replay", "Replay"),
        K("run.back", "escape", "back", "Back"),
    ),
    "approval": (
        K("approval.approve", "a", "approve", "Approve"),
        K("approval.reject", "r", "reject", "Reject…"),
        K("approval.edit", "e", "edit", "Edit, then approve"),
        K("approval.rest", "g", "rest", "Approve rest of generation"),
        K("approval.next", "n", "next", "Next waiting"),
        K("approval.save", "ctrl+s", "save_edit", "Approve edited", show=False),
        K("approval.external", "ctrl+e", "external_edit", "Edit in $EDITOR"),
        K("approval.later", "escape", "later", "Later"),
    ),
    "sweep": (
        K("sweep.answer", "a", "answer", "Answer next approval"),
        K("sweep.stats", "s", "refresh_stats", "Refresh statistics"),
        K("sweep.quit", "q", "app.quit", "Quit (resume later)"),
    ),
    "new_sweep": (K("new_sweep.start", "ctrl+s", "start", "Start the sweep"),),
    "improver": (
        K("imp.prev", "left_square_bracket", "step(-1)", "Previous", display="["),
        K("imp.next", "right_square_bracket", "step(1)", "Next", display="]"),
        K("imp.side", "s", "side_by_side", "Side by side"),
        K("imp.source", "1", "tab('source')", "Source"),
        K("imp.diff", "2", "tab('diff')", "Diff"),
        K("imp.scores", "3", "tab('scores')", "Scores"),
        K("imp.audit", "4", "tab('audit')", "Audit"),
        K("imp.transcript", "5", "tab('transcript')", "Transcript"),
        K("imp.filter", "slash", "filter", "Filter", display="/"),
        K("imp.back", "escape", "back", "Back"),
    ),
    "history": (
        K("hist.prev", "left_square_bracket", "generation(-1)", "Prev gen", display="["),
        K("hist.next", "right_square_bracket", "generation(1)", "Next gen", display="]"),
        K("hist.best", "b", "best", "Best"),
        K("hist.mark", "m", "mark", "Mark to compare"),
        K("hist.open", "enter", "open", "Improver"),
        K("hist.tree", "t", "toggle_tree", "Tree/Table"),
        K("hist.back", "escape", "back", "Back"),
    ),
    "diff": (  # the diff widget (approval modal, improver and history screens), when focused
        K("diff.mode", "v", "toggle_mode", "Unified/side by side"),
        K("diff.next", "full_stop", "change(1)", "Next change", display="."),
        K("diff.prev", "comma", "change(-1)", "Prev change", display=","),
        K("diff.home", "home", "change_home", "First line", show=False),
    ),
    "replay": (
        K("replay.pause", "space", "toggle_pause", "Pause/Resume display"),
        K("replay.step", "n", "step", "Step"),
        K("replay.speed", "s", "speed", "Speed"),
        K("replay.back", "escape", "back", "Back"),
    ),
    "help": (
        K("help.close", "escape", "dismiss", "Close"),
        K("app.help", "question_mark", "dismiss", "Close", show=False, display="?"),
    ),
    "confirm": (
        K("confirm.yes", "y", "answer(True)", "Yes"),
        K("confirm.no", "n,escape", "answer(False)", "No"),
    ),
}

#: Keys Textual keeps for itself (the command palette, quit, interrupt).
RESERVED: dict[str, str] = {
    "ctrl+p": "the command palette",
    "ctrl+q": "quit",
    "ctrl+c": "copy / interrupt",
}

MODIFIERS = ("ctrl", "shift", "alt", "meta", "super", "hyper")
NAMED_KEYS = frozenset(
    [
        "escape",
        "enter",
        "tab",
        "space",
        "backspace",
        "delete",
        "insert",
        "home",
        "end",
        "pageup",
        "pagedown",
        "up",
        "down",
        "left",
        "right",
        "slash",
        "backslash",
        "at",
        "minus",
        "plus",
        "underscore",
        "comma",
    ]
    + [f"f{n}" for n in range(1, 25)]
)
SHORT = {"escape": "esc"}


def binding_ids() -> list[str]:
    """Every binding id once, in the order of ``SCOPES``."""
    return list(dict.fromkeys(spec.id for specs in SCOPES.values() for spec in specs))


def _defaults() -> dict[str, str]:
    return {spec.id: spec.key for specs in SCOPES.values() for spec in specs}


def _char_name(name: str) -> str | None:
    """The character a key name stands for (``question_mark`` -> ``?``), else None."""
    try:
        char = unicodedata.lookup(name.replace("_", " ").upper())
    except KeyError:
        return None
    return char if len(char) == 1 and char.isprintable() and not char.isspace() else None


def _normal(key: str) -> str:
    """One key in a comparable form: ``?`` and ``question_mark`` are the same key."""
    *mods, name = key.split("+")
    if len(name) == 1 and not name.isalnum():
        name = unicodedata.name(name, name).lower().replace(" ", "_").replace("-", "_")
    return "+".join([*mods, name])


def _key_problem(key: str) -> str | None:
    """Why ``key`` (one key, no commas) is not a key Textual can bind, else None."""
    if not key:
        return "an empty key"
    if key == "+":
        return None
    *mods, name = key.split("+")
    for mod in mods:
        if mod not in MODIFIERS:
            return f"'{mod}' in '{key}' is not a modifier ({', '.join(MODIFIERS)})"
    if len(name) == 1:
        return None if name.isprintable() and not name.isspace() else f"'{key}' is not a key"
    if name in NAMED_KEYS or _char_name(name) is not None:
        return None
    close = difflib.get_close_matches(name, sorted(NAMED_KEYS), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"'{key}' is not a key{hint}: use a character, a name like 'escape' or 'f5'"


def _suggest(name: str, ids: list[str]) -> str:
    """Near matches of an unknown id: same last part (``approve``), else similar spellings."""
    tails = {i: i.split(".", 1)[-1] for i in ids}
    near = difflib.get_close_matches(name, sorted(set(tails.values())), n=2, cutoff=0.7)
    close = [i for i, tail in tails.items() if tail == name] or [
        i for i, tail in tails.items() if tail in near
    ]
    close = close or difflib.get_close_matches(name, ids, n=3, cutoff=0.6)
    return " or ".join(f"'{c}'" for c in close[:3])


def check_keymap(keymap: object) -> dict[str, str]:
    """A ``[keymap]`` table (id -> ``"key"``, ``"key1,key2"`` or a list of keys) checked
    and normalised to id -> ``"key1,key2"``. Raises ValueError naming the entry and the fix:
    an unknown id (with its near matches), a key Textual cannot bind, a reserved key, or a
    key bound twice on one screen."""
    if not isinstance(keymap, Mapping):
        raise ValueError('must be a table of binding id = key, e.g. approval.approve = "y"')
    ids = binding_ids()
    out: dict[str, str] = {}
    for binding_id, value in keymap.items():
        if binding_id not in ids:
            near = _suggest(str(binding_id), ids)
            raise ValueError(
                f"unknown binding id '{binding_id}' in [keymap]: "
                + (f"did you mean {near}? " if near else "")
                + "the ids are listed in docs/app.md (Your own keys)"
            )
        keys = [value] if isinstance(value, str) else value
        if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
            raise ValueError(f'[keymap] {binding_id} must be a key or a list of keys, e.g. "y"')
        parts = [p.strip() for k in keys for p in k.split(",")]
        for part in parts:
            problem = _key_problem(part)
            if problem:
                raise ValueError(f"[keymap] {binding_id}: {problem}")
            reserved = RESERVED.get(_normal(part).lower())
            if reserved:
                raise ValueError(
                    f"[keymap] {binding_id}: '{part}' is kept for {reserved}; choose another key"
                )
        out[str(binding_id)] = ",".join(parts)
    _check_clashes(out)
    return out


def _check_clashes(keymap: Mapping[str, str]) -> None:
    """No key may run two bindings on one screen (the app's keys count on every screen)."""
    defaults = _defaults()
    for scope, specs in SCOPES.items():
        seen: dict[str, str] = {}
        chain = specs if scope == "app" else (*specs, *SCOPES["app"])
        for spec in chain:
            for key in keymap.get(spec.id, defaults[spec.id]).split(","):
                other = seen.setdefault(_normal(key), spec.id)
                if other != spec.id and (other in keymap or spec.id in keymap):
                    rebound = other if other in keymap else spec.id
                    raise ValueError(
                        f"[keymap] {rebound}: '{key}' is already the key of "
                        f"{spec.id if rebound == other else other} on the {scope} screen; "
                        "choose another key or rebind that one too"
                    )


def label(binding_id: str, keymap: Mapping[str, str] | None = None) -> str:
    """How to name the key of ``binding_id`` in text (``a``, ``esc``, ``?``): the first
    key the user's keymap gives it, else its default."""
    if keymap and binding_id in keymap:
        first = keymap[binding_id].split(",")[0]
    else:
        spec = next(s for specs in SCOPES.values() for s in specs if s.id == binding_id)
        if spec.display:
            return spec.display
        first = spec.key.split(",")[0]
    *mods, name = first.split("+")
    shown = SHORT.get(name) or (_char_name(name) if name != "space" else None) or name
    return "+".join([*mods, shown])
