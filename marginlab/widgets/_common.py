"""Pieces both app views share: the message line, the share panel (copy link / copy as code), classroom
hide/lock, and keeping values in controls without their observers firing."""

from __future__ import annotations

import contextlib
import html

__all__ = ["Messages", "share_html", "apply_classroom", "show", "quiet_setter", "open_app"]

ERROR_STYLE = "color:#a40000;background:#fff0f0;border:1px solid #e0b4b4;padding:4px 8px;border-radius:3px"

# The copy buttons run in the page: JupyterLab's (or Notebook 7's) address of the notebook becomes its Voila
# app address, whose query string Voila hands to the kernel (notebook 01 opens that state); under Voila the
# page's own address is used. A refused clipboard falls back to a prompt the user can copy from.
_COPY_JS = (
    "(function(b){var t=b.getAttribute('data-copy');"
    "if(b.getAttribute('data-kind')==='link'){var p=location.pathname,v='/voila/render/';"
    "if(p.indexOf(v)<0){p=p.replace(/\\/lab(\\/workspaces\\/[^/]+)?\\/tree\\//,v);}"
    "if(p.indexOf(v)<0){p=p.replace(/\\/notebooks\\//,v);}t=location.origin+p+'?'+t;}"
    "var done=function(){var o=b.textContent;b.textContent='copied';setTimeout(function(){b.textContent=o},"
    "1500)};if(navigator.clipboard){navigator.clipboard.writeText(t).then(done,function(){"
    "window.prompt('Copy:',t)})}else{window.prompt('Copy:',t)}})(this)"
)


def share_html(query: str, code: str) -> str:
    """Two buttons copying the app's link (``?state=...``) and the Python that rebuilds it."""
    buttons = []
    for kind, label, text, tip in (
        ("link", "copy link", query, "a link that opens this setup as an app (Voila)"),
        ("code", "copy as code", code, "Python that rebuilds this app in any notebook cell"),
    ):
        buttons.append(
            f"<button class='jupyter-button widget-button marginlab-copy-{kind}' title='{html.escape(tip)}' "
            f"style='width:auto;padding:0 8px;margin:0 4px 0 0' data-kind='{kind}' "
            f"data-copy='{html.escape(text, quote=True)}' onclick=\"{_COPY_JS}\">{label}</button>"
        )
    return "<div class='marginlab-share'>" + "".join(buttons) + "</div>"


class Messages:
    """The app's message line: an error in place (red), or a note."""

    def __init__(self, widget):
        self.widget = widget

    def error(self, text: str) -> None:
        self.widget.value = f"<div class='marginlab-error' style='{ERROR_STYLE}'>⚠ {html.escape(text)}</div>"

    def note(self, text: str) -> None:
        self.widget.value = f"<div style='color:#444;padding:4px 8px'>{html.escape(text)}</div>"

    def clear(self) -> None:
        self.widget.value = ""

    def show(self, error: str | None) -> None:
        """Show ``error`` (the session's last error) or clear an old one."""
        if error:
            self.error(error)
        elif "marginlab-error" in self.widget.value:
            self.clear()


def show(widget, visible: bool) -> None:
    widget.layout.display = None if visible else "none"


def apply_classroom(widgets: dict, hide, lock) -> None:
    """Hide or disable the named controls (classroom mode); controls without ``disabled`` are hidden."""
    for name in hide:
        if name in widgets:
            show(widgets[name], False)
    for name in lock:
        w = widgets.get(name)
        if w is None:
            continue
        if hasattr(w, "disabled"):
            w.disabled = True
        else:
            show(w, False)


@contextlib.contextmanager
def quiet_setter(flag_owner, attr: str = "_quiet"):
    """Set widget values without the app's observers reacting (they check ``flag_owner._quiet``)."""
    old = getattr(flag_owner, attr, False)
    setattr(flag_owner, attr, True)
    try:
        yield
    finally:
        setattr(flag_owner, attr, old)


def open_app(cls, defaults: dict, **kwargs):
    """The app a link asked for (Voila passes the page's query string to the kernel as ``QUERY_STRING``),
    else ``cls(**defaults)``. A damaged or foreign link opens the defaults with the reason shown."""
    import os

    query = os.environ.get("QUERY_STRING", "")
    if "state=" not in query:
        return cls(**defaults)
    try:
        return cls.from_query(query, **kwargs)
    except ValueError as exc:
        app = cls(**defaults)
        app.messages.error(f"The link could not be opened: {exc}")
        return app


class AppView:
    """What every app view shares: display (figures synced first) and opening from a link (``?state=...``)
    through the app's own ``from_state``."""

    @classmethod
    def from_query(cls, query: str, **kwargs):
        """The app of a link's query string (``?state=...``)."""
        from urllib.parse import parse_qs

        from ..sessions import decode_state

        token = (parse_qs((query or "").lstrip("?")).get("state") or [""])[0]
        return cls.from_state(decode_state(token), **kwargs)

    def _repr_mimebundle_(self, **kwargs):
        from ._display import sync_figures

        sync_figures(self.widget)
        return self.widget._repr_mimebundle_(**kwargs)

    def _ipython_display_(self):
        from ._display import display_app

        display_app(self.widget)


class LinkedApp(AppView):
    """An app rebuilt from its session's state: ``_session_cls`` is the headless session the state belongs
    to; view-only options (``interval_ms``) go to the view."""

    _session_cls = None

    @classmethod
    def from_state(cls, state: dict, *, replay: bool = True, **kwargs):
        """The app of :meth:`state` (``replay=True`` retrains to the same weights)."""
        view = {k: kwargs.pop(k) for k in ("interval_ms",) if k in kwargs}
        return cls(session=cls._session_cls.from_state(state, replay=replay, **kwargs), **view)
