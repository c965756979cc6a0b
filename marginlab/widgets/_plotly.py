"""plotly's ``FigureWidget`` without nbformat's import cost.

Importing ``plotly.graph_objects.FigureWidget`` imports ``plotly.io._renderers``, which imports nbformat at
module level only to check its version when a figure is shown through a notebook *renderer*
(``fig.show()``), which the apps never do. nbformat imports jsonschema, whose format checkers compile
rfc3987-syntax's grammar: 1.3-2.7 s of a kernel's start measured here (8 s with the machine 3x
oversubscribed), most of the apps' import time. nbformat is therefore registered as a deferred module: its
code runs on first use of one of its attributes, e.g. by ``fig.show()``, in the same module object, which
behaves exactly as if imported eagerly from then on. The views import this module
first, before any figure is built (building a ``go.Figure`` imports ``plotly.io`` too).
"""

from __future__ import annotations

import importlib.util
import sys
import types

__all__ = ["FigureWidget", "defer_nbformat"]


# attributes that introspection asks every object for (inspect, doctest, mock): not a use of the module
_PROBES = frozenset({"__wrapped__", "__test__", "__signature__", "__func__", "__self__", "__objclass__",
                     "__isabstractmethod__", "__origin__", "__code__"})


class _Deferred(types.ModuleType):
    """A module whose code runs on the first access to an attribute it does not have yet. Unlike
    ``importlib.util.LazyLoader``, the import system's own attributes (``__file__``, ``__path__``,
    ``__spec__`` ...) are there from the start, so tools that scan ``sys.modules`` (``inspect.getmodule``,
    which torch calls while importing) do not trigger the import."""

    def __getattr__(self, name):
        if name in _PROBES or self.__dict__.get("_marginlab_loading"):
            raise AttributeError(name)
        self.__dict__["_marginlab_loading"] = True
        try:
            if self.__spec__.submodule_search_locations is not None:
                self.__dict__["__path__"] = self.__spec__.submodule_search_locations
            self.__spec__.loader.exec_module(self)  # the real module code, run in this very module
        finally:
            self.__class__ = types.ModuleType  # loaded (or failed loudly): a plain module from now on
            self.__dict__.pop("_marginlab_loading", None)
        return getattr(self, name)


def defer_nbformat() -> bool:
    """Register nbformat to load on first use, unless it is already imported (or not installed). Returns
    whether it was deferred."""
    if "nbformat" in sys.modules:
        return False
    spec = importlib.util.find_spec("nbformat")
    if spec is None or spec.loader is None:
        return False
    module = importlib.util.module_from_spec(spec)
    # without __path__, importing a submodule (``import nbformat.v4``) asks for it: the package loads first
    module.__dict__.pop("__path__", None)
    module.__class__ = _Deferred
    sys.modules["nbformat"] = module
    return True


defer_nbformat()


def FigureWidget(*args, **kwargs):  # noqa: N802 - stands in for the class
    """``plotly.graph_objects.FigureWidget(*args, **kwargs)`` (nbformat deferred, see the module)."""
    import plotly.graph_objects as go

    return go.FigureWidget(*args, **kwargs)
