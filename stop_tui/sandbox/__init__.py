"""Isolated execution of untrusted, LM-written Python code.

Public names are imported lazily (PEP 562) so that the guest side, which
imports :mod:`stop_tui.sandbox.codec`, never loads the parent-side machinery.
See :mod:`stop_tui.sandbox.api` for the API (the children it makes are
:mod:`stop_tui.sandbox.child`, their limits and results :mod:`stop_tui.sandbox.limits`)
and :mod:`stop_tui.sandbox.layers` for the isolation layers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stop_tui.sandbox.api import Sandbox
    from stop_tui.sandbox.child import Child
    from stop_tui.sandbox.layers import IsolationReport, probe
    from stop_tui.sandbox.limits import ExitInfo, Limits, Reply, RpcFailure

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
    if name == "Sandbox":
        from stop_tui.sandbox import api

        return api.Sandbox
    if name == "Child":
        from stop_tui.sandbox import child

        return child.Child
    if name in __all__:
        from stop_tui.sandbox import limits

        return getattr(limits, name)
    raise AttributeError(f"module 'stop_tui.sandbox' has no attribute {name!r}")
