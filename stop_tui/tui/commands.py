"""The command palette's provider: every binding in reach, by name."""

from __future__ import annotations

from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from stop_tui.tui.bindings import reachable_bindings

__all__ = ["ActionsProvider"]


class ActionsProvider(Provider):
    """Every binding of the current screen and the app, as palette commands."""

    def _commands(self) -> list[tuple[str, str, Any]]:
        screen = self.screen
        seen: set[str] = set()
        out: list[tuple[str, str, Any]] = []
        for namespace, bindings in reachable_bindings(screen):
            for binding in bindings:
                if binding.action in seen or not binding.description:
                    continue
                seen.add(binding.action)
                key = binding.key_display or binding.key
                help_text = binding.tooltip or f"key: {key}"
                out.append(
                    (
                        binding.description,
                        help_text,
                        partial(screen.app.run_action, binding.action, namespace),
                    )
                )
        return out

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
