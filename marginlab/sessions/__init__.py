"""Headless app sessions: the state, pipeline and cache of each app, with no widget code (views in
:mod:`marginlab.widgets` draw what a session returns). See :mod:`marginlab.sessions.base` for the protocol.

``PlaygroundSession`` (the 2-D playground) and ``ExplorerSession`` (the margin explorer) are imported lazily:
``import marginlab.sessions`` loads neither torch nor plotly nor ipywidgets."""

from __future__ import annotations

import importlib

from .base import Session, SessionError, decode_state, encode_state

_LAZY = {
    "PlaygroundSession": "playground", "CompareSession": "compare",
    "PlaygroundSettings": "playground_settings",
    "SettingsError": "playground_settings", "ExplorerSession": "explorer", "ExplorerSettings": "explorer",
}

__all__ = ["Session", "SessionError", "encode_state", "decode_state", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
