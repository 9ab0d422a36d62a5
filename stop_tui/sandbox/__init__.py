"""Isolated execution of untrusted, LM-written Python code.

Public names are imported lazily (PEP 562) so that the guest side, which
imports :mod:`stop_tui.sandbox.codec`, never loads the parent-side machinery.
See :mod:`stop_tui.sandbox.api` for the API and :mod:`stop_tui.sandbox.layers`
for the isolation layers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stop_tui.sandbox.api import Child, ExitInfo, Limits, Reply, RpcFailure, Sandbox
    from stop_tui.sandbox.layers import IsolationReport, probe

__all__ = [
    "Child",
    "ExitInfo",
    "IsolationReport",
    "Limits",
    "Reply",
    "RpcFailure",
    "Sandbox",
    "probe",
]


def __getattr__(name: str) -> Any:
    if name in ("IsolationReport", "probe"):
        from stop_tui.sandbox import layers

        return getattr(layers, name)
    if name in __all__:
        from stop_tui.sandbox import api

        return getattr(api, name)
    raise AttributeError(f"module 'stop_tui.sandbox' has no attribute {name!r}")
