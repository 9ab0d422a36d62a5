"""The app's key bindings: Textual bindings built from :mod:`stop_tui.keymap`, and the
bindings in reach of a screen (what the help screen and the command palette list).

A user's ``[keymap]`` is applied by Textual (``App.set_keymap``): the footer, the help
and the palette all read the rebound keys from the same binding chain.
"""

from __future__ import annotations

from typing import Any

from textual.binding import Binding, BindingType
from textual.content import Content
from textual.dom import DOMNode
from textual.screen import Screen

from stop_tui.keymap import SCOPES

__all__ = ["bindings_for", "reachable_bindings", "with_key"]


def bindings_for(scope: str) -> list[BindingType]:
    """The ``BINDINGS`` of one screen (``"app"``: the app's own)."""
    return [
        Binding(
            spec.key,
            spec.action,
            spec.description,
            show=spec.show,
            key_display=spec.display,
            tooltip=spec.tooltip,
            id=spec.id,
        )
        for spec in SCOPES[scope]
    ]


def reachable_bindings(screen: Screen[Any]) -> list[tuple[DOMNode, list[Binding]]]:
    """(node, bindings) from the focused widget up through ``screen`` to the app, with the
    user's keymap applied, leaving out actions a node says are unavailable here and now
    (e.g. pause on a saved run) and bindings neither shown nor named."""
    out: list[tuple[DOMNode, list[Binding]]] = []
    # Textual's own chain (private, but it is what a key press consults): the keymap
    # applied, keys a focused input consumes left out.
    for node, bindings_map in screen._binding_chain:
        usable: list[Binding] = []
        for _key, binding in bindings_map:
            if not (binding.show or binding.id):
                continue
            name = binding.action.split("(", 1)[0]
            check = getattr(node, "check_action", None)
            if check is not None and check(name, ()) is False:
                continue
            usable.append(binding)
        out.append((node, usable))
    return out


def with_key(text: str, key: str) -> Content:
    """A button label naming its key, ``Approve [a]`` (plain text: ``[a]`` is no markup)."""
    return Content(f"{text} [{key}]")
