"""The protocol every app session follows (headless: no ipywidgets, no plotly widgets imported here).

A session holds the truth of an app: its :attr:`settings` (a frozen dataclass, validated on every change),
its data, model, margins and selection. Its methods return results; views draw them. Both apps share:

``settings``                     the current frozen settings dataclass
``update(**changes)``            new settings (validated first; nothing changes on an error)
``state()`` / ``from_state(d)``  a JSON-serialisable dict (settings, seeds, custom points, selection ...) and
                                 the session rebuilt from it
``share_query()`` / ``from_query(q)``   the same state as a URL query string (``?state=...``)
``select(...)``                  choose a sample; returns what a view shows for it
``error``                        the last user-facing error message (None when the last action succeeded)
``guard()``                      the one context manager views wrap user actions in: a bad input becomes
                                 ``error`` (a message shown in place), never a traceback
``on_progress``                  ``callback(fraction, message)`` for long steps, or None
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import logging
import zlib
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlencode

__all__ = ["Session", "SessionError", "encode_state", "decode_state"]

log = logging.getLogger(__name__)

STATE_VERSION = 1


class SessionError(ValueError):
    """A user-facing error: its message names the setting and its allowed range and is shown as is."""


def encode_state(state: dict) -> str:
    """A state dict as a compact URL-safe token (JSON, deflate, base64url without padding)."""
    raw = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=")


def decode_state(token: str) -> dict:
    """Inverse of :func:`encode_state`; a damaged token raises :class:`SessionError`."""
    if not isinstance(token, str) or not token:
        raise SessionError("state: the link carries no state (expected ?state=...)")
    try:
        raw = zlib.decompress(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        state = json.loads(raw)
    except Exception as exc:  # noqa: BLE001 - any damage to a pasted link means the same to the user
        raise SessionError(f"state: the link's state could not be read ({type(exc).__name__}); copy the "
                           "whole link again") from None
    if not isinstance(state, dict):
        raise SessionError("state: the link's state is not a dictionary")
    return state


class Session:
    """Base class of the app sessions. Subclasses set ``app`` (a short name), ``Settings`` (a frozen
    dataclass with a ``validate()`` method raising :class:`SessionError`) and implement
    :meth:`_state_extra` / :meth:`_restore_extra` for what the state holds beyond the settings."""

    app: ClassVar[str] = "session"
    Settings: ClassVar[type]

    def __init__(self, settings=None, *, on_progress=None, **changes):
        base = settings if settings is not None else self.Settings()
        if not isinstance(base, self.Settings):
            raise TypeError(f"settings must be a {self.Settings.__name__}, got {type(base).__name__}")
        self._settings = self._checked(dataclasses.replace(base, **changes) if changes else base)
        self.on_progress = on_progress
        self.error: str | None = None

    # -- settings --------------------------------------------------------------------------------------
    @property
    def settings(self):
        return self._settings

    @staticmethod
    def _checked(settings):
        validate = getattr(settings, "validate", None)
        if validate is not None:
            validate()
        return settings

    def update(self, **changes):
        """Validate and apply setting changes; returns the new settings. Unknown names raise
        :class:`SessionError` naming them; on any error the settings stay as they were."""
        names = {f.name for f in dataclasses.fields(self.Settings)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise SessionError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        self._settings = self._checked(dataclasses.replace(self._settings, **changes))
        return self._settings

    # -- errors and progress -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def guard(self, action: str = ""):
        """Run a user action: a :class:`ValueError`/:class:`TypeError` (bad input) becomes :attr:`error`
        (prefixed with ``action``); other exceptions are logged and reported the same way, so a view never
        shows a traceback. ``error`` is cleared when the action succeeds."""
        try:
            yield
        except (ValueError, TypeError) as exc:
            self.error = f"{action}: {exc}" if action else str(exc)
        except Exception as exc:  # noqa: BLE001 - an app must keep running and say what happened
            log.exception("%s failed", action or "action")
            self.error = (f"{action} failed" if action else "failed") + f": {type(exc).__name__}: {exc}"
        else:
            self.error = None

    def progress(self, fraction: float, message: str = ""):
        if self.on_progress is not None:
            self.on_progress(float(fraction), message)

    # -- state ---------------------------------------------------------------------------------------------
    def state(self) -> dict:
        """Everything needed to rebuild this session, as plain JSON types (tuples become lists, so a state
        equals itself after a trip through JSON or a link)."""
        out = {"app": self.app, "version": STATE_VERSION, "settings": dataclasses.asdict(self._settings)}
        out.update(self._state_extra())
        # fail here, not in a link, if a subclass put something unserialisable in
        return json.loads(json.dumps(out))

    @classmethod
    def from_state(cls, state: dict, **kwargs) -> Session:
        """Rebuild a session from :meth:`state` (unknown settings raise :class:`SessionError`)."""
        if not isinstance(state, dict):
            raise SessionError(f"state must be a dict, got {type(state).__name__}")
        if state.get("app", cls.app) != cls.app:
            raise SessionError(f"state is for the {state.get('app')!r} app, not {cls.app!r}")
        if state.get("version", STATE_VERSION) > STATE_VERSION:
            raise SessionError(f"state version {state['version']} is newer than this marginlab understands "
                               f"({STATE_VERSION}); update marginlab")
        settings = state.get("settings", {})
        names = {f.name for f in dataclasses.fields(cls.Settings)}
        unknown = sorted(set(settings) - names)
        if unknown:
            raise SessionError(f"state.settings has unknown setting(s) {', '.join(unknown)}")
        session = cls(cls.Settings(**settings), **kwargs)
        session._restore_extra(state)
        return session

    def share_query(self) -> str:
        """The state as a URL query string, ``state=<token>``."""
        return urlencode({"state": encode_state(self.state())})

    @classmethod
    def from_query(cls, query: str, **kwargs) -> Session:
        """Rebuild from a query string (``state=...``, with or without a leading ``?``)."""
        params = parse_qs((query or "").lstrip("?"))
        return cls.from_state(decode_state((params.get("state") or [""])[0]), **kwargs)

    def _state_extra(self) -> dict[str, Any]:
        return {}

    def _restore_extra(self, state: dict) -> None:
        return None
