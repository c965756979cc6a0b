"""Headless app sessions: the state, pipeline and cache of each app, with no widget code (views in
:mod:`marginlab.widgets` draw what a session returns). See :mod:`marginlab.sessions.base` for the protocol."""

from .base import Session, SessionError, decode_state, encode_state

__all__ = ["Session", "SessionError", "encode_state", "decode_state"]
