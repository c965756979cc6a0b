"""The explorer's selection toolkit and certification, headless (a mixin of
:class:`~marginlab.sessions.ExplorerSession`).

- :meth:`~ExplorerTools.search` highlights the samples a query names (``label:3 group:corrupt 100-199``,
  see :func:`marginlab.analysis.selection.parse_query`); :meth:`~ExplorerTools.select_rows` highlights given
  rows (a lasso on an embedding);
- :meth:`~ExplorerTools.neighbours`: the k explored samples nearest to the selected one, in the input or in a
  layer's space, with their margins;
- named saved selections (:meth:`~ExplorerTools.save_selection`, ...) keep *training indices*, so a selection
  survives a new run with another model, corruption or N (samples no longer explored are left out);
- :meth:`~ExplorerTools.certify` brackets the margin of the selected (or the highlighted) samples:
  ``lower <= margin <= upper``, proved by the MIP (``method="mip"``, ReLU networks: the global optimum) or by
  linear bounds (``certify=True``, any supported MLP: a sound lower bound only).
"""

from __future__ import annotations

import numpy as np

from .._validation import check_float, check_int
from .base import SessionError

__all__ = ["ExplorerTools", "CERT_GROUPS", "MAX_MIP_ROWS"]

CERT_GROUPS = ("certified", "bracket only", "not checked")  # the histogram's colours by certification
MAX_MIP_ROWS = 50  # samples one MIP certification may take (each up to time_limit seconds)
CERT_RTOL = 1e-4  # certified = lower >= upper (1 - 1e-4), as MarginResult.certified (marginlab.margins)


class ExplorerTools:
    """Search, lasso rows, neighbours, saved selections and certification of an explorer session."""

    def _reset_tools(self):
        """After a run: the highlight and the neighbour indices belong to the previous run."""
        n = len(self.rows)
        self.query = self.highlight_rows = None
        self._neighbour_index = {}
        self.neighbour_rows = None
        self.cert = {"lower": np.full(n, np.nan), "upper": np.full(n, np.nan),
                     "how": np.full(n, "", dtype=object)}

    def _highlight(self, rows, *, query=None, indices=None):
        self.highlighted = np.asarray(rows, dtype=np.int64)
        self.highlight, self.query, self.highlight_rows = None, query, indices
        return self.highlighted

    # -- search and lasso --------------------------------------------------------------------------------
    def search(self, text: str) -> np.ndarray:
        """Highlight the explored samples a query names and return their rows: space-separated terms
        ``label:3,5`` (class), ``index:100-199`` (training index; a bare number or range means the same),
        ``group:corrupt`` (a seed-000 group or either half of its name), ``row:0-9``; terms combine with AND,
        values within a term with OR. An empty query clears the highlight."""
        from ..analysis.selection import search

        self._need_run()
        if not isinstance(text, str):
            raise SessionError(f"search must be text such as 'label:3 group:corrupt', "
                               f"got {type(text).__name__}")
        if not text.strip():
            self.clear_highlight()
            return self.highlighted
        frame = self._search_frame()
        try:
            rows = search(frame, text, class_names=self.class_names or None)
        except (TypeError, ValueError) as exc:
            raise SessionError(str(exc)) from None
        return self._highlight(rows, query=text.strip())

    def _search_frame(self):
        import pandas as pd

        ds, rows = self.train_data, self.rows
        return pd.DataFrame({"row": np.arange(len(rows)), "index": rows, "label": ds.y[rows],
                             "group": self.groups})

    def select_rows(self, rows) -> np.ndarray:
        """Highlight explored ``rows`` (e.g. the points inside a lasso on an embedding)."""
        self._need_run()
        rows = self._checked_rows(rows, "rows")
        return self._highlight(rows, indices=self.rows[rows].tolist())

    def _checked_rows(self, rows, name) -> np.ndarray:
        n = len(self.rows)
        try:
            rows = np.asarray(rows)
            ok = rows.ndim == 1 and (rows.size == 0 or np.issubdtype(rows.dtype, np.integer))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise SessionError(f"{name} must be a list of explored rows (integers in [0, {n - 1}])")
        if rows.size and (rows.min() < 0 or rows.max() >= n):
            raise SessionError(f"{name} must lie in [0, {n - 1}], got [{rows.min()}, {rows.max()}]")
        return np.unique(rows.astype(np.int64))

    def set_isolate(self, on: bool) -> None:
        """Isolate the highlighted samples: the embeddings show only them (all samples when none are)."""
        if not isinstance(on, (bool, np.bool_)):
            raise SessionError(f"isolate must be True or False, got {on!r}")
        self.isolate = bool(on)

    def shown_embedding(self, side: int) -> np.ndarray:
        """View ``side``'s embedding as drawn: with :attr:`isolate` on (and samples highlighted), the other
        samples' coordinates are NaN, which plotly leaves out (and its axes fit the rest)."""
        Z = self.embeddings[side]
        if Z is None or not self.isolate or len(self.highlighted) == 0:
            return Z
        out = np.full_like(Z, np.nan)
        out[self.highlighted] = Z[self.highlighted]
        return out

    # -- saved selections ---------------------------------------------------------------------------------
    def save_selection(self, name: str, rows=None) -> list[int]:
        """Keep explored ``rows`` (default: the highlighted ones) under ``name``, as training indices.
        Returns the saved training indices."""
        self._need_run()
        rows = self.highlighted if rows is None else self._checked_rows(rows, "rows")
        if len(rows) == 0:
            raise SessionError("save selection: nothing is highlighted; search, lasso or pick a range first")
        try:
            return self.selections.save(name, self.rows[rows])
        except (TypeError, ValueError) as exc:
            raise SessionError(f"selection name: {exc}") from None

    def load_selection(self, name: str) -> np.ndarray:
        """Highlight saved selection ``name`` (its samples that this run explores); returns their rows."""
        self._need_run()
        try:
            idx = self.selections.get(name)
        except (KeyError, ValueError) as exc:
            raise SessionError(str(exc).strip("'\"")) from None
        rows = np.flatnonzero(np.isin(self.rows, idx))
        self._highlight(rows, indices=self.rows[rows].tolist())
        return self.highlighted

    def delete_selection(self, name: str) -> None:
        try:
            self.selections.delete(name)
        except (KeyError, ValueError) as exc:
            raise SessionError(str(exc).strip("'\"")) from None

    # -- neighbours ---------------------------------------------------------------------------------------
    def neighbours(self, r: int | None = None, k: int = 5, space: str = "input") -> dict:
        """The ``k`` explored samples nearest to explored row ``r`` (default: the selected sample) in
        ``space`` (``"input"`` or a layer name of :attr:`layer_names`; Euclidean): their ``rows``,
        training ``index``, ``distance``, ``label`` and ``margin``, nearest first."""
        from ..analysis.selection import NeighbourIndex

        self._need_run()
        if r is None:
            if self.selected is None:
                raise SessionError("neighbours: select a sample first (click a point in an embedding)")
            r = self.selected
        r = check_int(r, "sample", min_value=0, max_value=len(self.rows) - 1)
        k = check_int(k, "k", min_value=1, max_value=min(50, len(self.rows) - 1))
        if space not in self.layer_names:
            raise SessionError(f"space must be one of {list(self.layer_names)}, got {space!r}")
        if space not in self._neighbour_index:
            layer = self.layer_names.index(space)
            self._neighbour_index[space] = NeighbourIndex.from_model(
                self.train_data.X[self.rows], model=self.model if layer else None, layer=layer)
        rows, dist = self._neighbour_index[space].query(r, k)
        idx = self.rows[rows]
        self.neighbour_rows = rows
        self.neighbour_settings = {"k": k, "space": space}
        return {"of": int(r), "space": space, "rows": rows, "index": idx, "distance": dist,
                "label": self.train_data.y[idx], "margin": self.result.margin[rows]}

    # -- certification ------------------------------------------------------------------------------------
    def certify_method(self) -> str:
        """``"mip"`` where the MIP proves the global margin (ReLU / leaky-ReLU networks, SCIP installed),
        else ``"bounds"`` (linear bounds: a sound lower bound)."""
        from ..margins.certify import check_certifiable
        from ..margins.relax import act_of

        self._need_run()
        try:
            check_certifiable(self.model)
        except ValueError as exc:
            raise SessionError(str(exc)) from None
        try:
            import pyscipopt  # noqa: F401 - only whether SCIP is there
        except ImportError:
            return "bounds"
        acts = [act_of(m) for m in self.model.modules()]
        ok = all(a is None or a.kind == "relu" or (a.kind == "leaky_relu" and a.param < 1) for a in acts)
        return "mip" if ok else "bounds"

    def certify(self, rows=None, *, time_limit: float = 10.0) -> dict:
        """Bracket the margins of explored ``rows`` (default: the selected sample): ``lower`` proved,
        ``upper`` a verified boundary point's distance, ``certified`` where they agree to 1e-4. The MIP
        (ReLU networks; at most :data:`MAX_MIP_ROWS` rows, ``time_limit`` seconds each) also replaces a
        sample's boundary point by the nearer one it finds. Returns the rows' brackets."""
        self._need_run()
        if rows is None:
            if self.selected is None:
                raise SessionError("certify: select a sample first (click a point in an embedding)")
            rows = [self.selected]
        rows = self._checked_rows(rows, "rows")
        time_limit = check_float(time_limit, "time_limit", min_value=0.1, max_value=600.0)
        how = self.certify_method()
        if len(rows) == 0:
            raise SessionError("certify: no samples given")
        if how == "mip" and len(rows) > MAX_MIP_ROWS:
            raise SessionError(f"certify: the MIP takes up to {time_limit:g} s per sample; highlight at most "
                               f"{MAX_MIP_ROWS} samples (got {len(rows)})")
        self.progress(0.0, f"certifying {len(rows)} sample(s) ({how}) ...")
        res = self._certified(rows, how, time_limit)
        self._merge_certified(rows, res, how)
        self.progress(1.0, "certified")
        return self.bracket(rows)

    def _certified(self, rows, how, time_limit):
        from ..margins import compute_margins

        X, y = self.train_data.X[self.rows[rows]], self.train_data.y[self.rows[rows]]
        if how == "mip":
            return compute_margins(self.model, X, y=y, method="mip", time_limit=time_limit)
        opts = self._method_options(self.run_settings)
        return compute_margins(self.model, X, y=y, method=self.run_settings.method, certify=True, **opts)

    def _merge_certified(self, rows, res, how):
        from ._explorer_store import MARGIN_FIELDS

        old = self.result.margin[rows]
        better = res.verified & (res.margin < old)  # only a verified point is an upper bound
        upper, nearer = np.where(better, res.margin, old), np.flatnonzero(better)
        for f in MARGIN_FIELDS:  # a nearer verified boundary point replaces the sample's
            # the status stays the explorer solver's: the bracket says what the certification found
            mine, theirs = getattr(self.result, f), getattr(res, f)
            if f in ("lower", "certified", "status") or mine is None or theirs is None:
                continue
            mine[rows[nearer]] = theirs[nearer]
        self.cert["lower"][rows] = np.fmin(res.lower, upper)  # a proved bound never exceeds a verified point
        self.cert["upper"][rows] = upper
        self.cert["how"][rows] = how
        if self.details is not None and self.selected in rows:
            self.select(self.selected)

    def bracket(self, rows) -> dict:
        """``{"rows", "lower", "upper", "certified", "how"}`` of explored ``rows`` (NaN: not checked yet)."""
        rows = self._checked_rows(rows, "rows")
        lo, up = self.cert["lower"][rows], self.cert["upper"][rows]
        return {"rows": rows, "lower": lo, "upper": up, "certified": self._is_certified(lo, up),
                "how": self.cert["how"][rows].astype(str)}

    @staticmethod
    def _is_certified(lo, up):
        with np.errstate(invalid="ignore"):
            return np.isfinite(lo) & (lo >= up * (1 - CERT_RTOL))

    def cert_groups(self) -> np.ndarray:
        """Per explored sample: ``"certified"`` (lower = upper), ``"bracket only"`` (lower < upper) or
        ``"not checked"``."""
        lo, up = self.cert["lower"], self.cert["upper"]
        return np.where(self._is_certified(lo, up), CERT_GROUPS[0],
                        np.where(np.isfinite(lo), CERT_GROUPS[1], CERT_GROUPS[2])).astype(object)

    # -- state ----------------------------------------------------------------------------------------------
    def _tools_state(self) -> dict:
        out = {}
        if len(self.selections):
            out["selections"] = self.selections.to_state()
        if self.query:
            out["search"] = self.query
        elif self.highlight_rows is not None:
            out["highlight_rows"] = [int(i) for i in self.highlight_rows]
        if self.neighbour_settings:
            out["neighbours"] = dict(self.neighbour_settings)
        if self.isolate:
            out["isolate"] = True
        return out

    def _restore_tools(self, state: dict) -> None:
        from ..analysis.selection import Selections

        try:
            self.selections = Selections.from_state(state.get("selections"))
        except (TypeError, ValueError) as exc:
            raise SessionError(f"state.selections: {exc}") from None
        nb = state.get("neighbours")
        if nb is not None:  # k in [1, 50] and a layer name (checked against the model when used)
            ok = (isinstance(nb, dict) and set(nb) == {"k", "space"} and isinstance(nb["space"], str)
                  and isinstance(nb["k"], int) and not isinstance(nb["k"], bool) and 1 <= nb["k"] <= 50)
            if not ok:
                raise SessionError("state.neighbours must be {'k': 1..50, 'space': layer name}, "
                                   f"got {nb!r}")
        self.neighbour_settings = dict(nb) if nb else None
        self.set_isolate(state.get("isolate", False))

    def _replay_tools(self, state: dict) -> None:
        """After a run from a state: its search or highlighted samples, and the selected sample's
        neighbours."""
        if state.get("search"):
            self.search(state["search"])
        elif state.get("highlight_rows") is not None:
            idx = np.asarray(state["highlight_rows"], dtype=np.int64)
            self.select_rows(np.flatnonzero(np.isin(self.rows, idx)))
        if self.neighbour_settings and self.selected is not None:
            self.neighbours(None, **self.neighbour_settings)
