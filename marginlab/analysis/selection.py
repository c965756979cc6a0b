"""The explorer's selection toolkit, headless: k nearest neighbours of a sample (in the input or in a layer's
space), searching a tidy samples table by label, index or group, and named saved selections kept as plain
JSON data (so they travel in an app's state and share link).
"""

from __future__ import annotations

import re

import numpy as np

from .._validation import check_int

__all__ = ["NeighbourIndex", "find_rows", "parse_query", "search", "Selections", "QUERY_KEYS"]

QUERY_KEYS = ("label", "index", "group", "row")


class NeighbourIndex:
    """Nearest neighbours among ``n`` samples in a fixed feature space (scikit-learn ``NearestNeighbors``,
    Euclidean), built once and queried per click.

    ``NeighbourIndex(F)`` takes features (n, d) (e.g. :func:`marginlab.embed.features`);
    :meth:`from_model` computes them from inputs and a model's layer (0 = input space)."""

    def __init__(self, F):
        from sklearn.neighbors import NearestNeighbors

        F = np.asarray(F, dtype=np.float64)
        if F.ndim != 2 or len(F) == 0:
            raise ValueError(f"F must have shape (n, d) with n >= 1, got {F.shape}")
        if not np.isfinite(F).all():
            raise ValueError("F contains NaN or infinite values")
        self.F = F
        self._nn = NearestNeighbors().fit(F)

    @classmethod
    def from_model(cls, X, *, model=None, layer=0) -> NeighbourIndex:
        """Neighbours in representation ``layer`` of ``model`` at inputs ``X`` (layer 0, the input itself,
        needs no model); the activations are computed in eval mode."""
        from ..embed import features

        return cls(features(X, model=model, layer=layer))

    def __len__(self) -> int:
        return len(self.F)

    def query(self, row, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, distances)``: the ``k`` samples nearest to sample ``row`` (itself excluded, even when
        other samples coincide with it), nearest first; fewer when there are fewer other samples."""
        n = len(self.F)
        row = check_int(row, "row", min_value=0, max_value=n - 1)
        k = check_int(k, "k", min_value=1)
        m = min(k + 1, n)
        dist, idx = self._nn.kneighbors(self.F[row:row + 1], n_neighbors=m)
        dist, idx = dist[0], idx[0]
        keep = idx != row
        if keep.all():  # duplicates of the sample pushed it out of the list: drop the farthest instead
            keep[-1] = False
        return idx[keep][:k], dist[keep][:k]

    def query_point(self, f, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, distances)`` of the ``k`` samples nearest to the feature vector ``f`` (d,)."""
        f = np.asarray(f, dtype=np.float64).reshape(1, -1)
        if f.shape[1] != self.F.shape[1] or not np.isfinite(f).all():
            raise ValueError(f"f must be a finite vector of {self.F.shape[1]} features, "
                             f"got shape {f.shape[1:]}")
        k = check_int(k, "k", min_value=1)
        dist, idx = self._nn.kneighbors(f, n_neighbors=min(k, len(self.F)))
        return idx[0], dist[0]


# -- search --------------------------------------------------------------------------------------------------
def _as_list(value):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        return [value]
    return list(value)


def _int_terms(values, key):
    """Integers and inclusive ranges ``(lo, hi)`` from ints, ``range``s and ``"a-b"`` / ``"a"`` strings."""
    out = []
    for v in _as_list(values):
        if isinstance(v, range):
            out.append((v.start, v.stop - 1) if v.step == 1 else list(v))
            continue
        if isinstance(v, str):
            m = re.fullmatch(r"\s*(-?\d+)\s*(?:(?:-|\.\.)\s*(-?\d+)\s*)?", v)
            if not m:
                raise ValueError(f"{key} must be integers or ranges like '10-20', got {v!r}")
            lo = int(m.group(1))
            out.append((lo, int(m.group(2)) if m.group(2) else lo))
            continue
        out.append(check_int(v, key))
    return out


def _match_ints(col, terms):
    col = np.asarray(col)
    hit = np.zeros(len(col), bool)
    for t in terms:
        if isinstance(t, tuple):
            hit |= (col >= t[0]) & (col <= t[1])
        elif isinstance(t, list):
            hit |= np.isin(col, t)
        else:
            hit |= col == t
    return hit


def _match_groups(col, values):
    """A group matches its full name (``corrupt:label-corrupted``) or either side of the colon."""
    col = np.char.lower(np.asarray(col).astype(str))
    parts = np.char.partition(col, ":")
    hit = np.zeros(len(col), bool)
    for v in _as_list(values):
        if not isinstance(v, str) or not v.strip():
            raise ValueError("group must be a group name such as 'clean', 'corrupt' or "
                             f"'corrupt:label-corrupted', got {v!r}")
        v = v.strip().lower()
        hit |= (col == v) | (parts[:, 0] == v) | (parts[:, 2] == v)
    return hit


def _match_labels(col, values, class_names):
    terms = []
    for v in _as_list(values):
        if isinstance(v, str) and class_names is not None and v.strip() in class_names:
            terms.append(list(class_names).index(v.strip()))
        else:
            terms.extend(_int_terms([v], "label"))
    return _match_ints(col, terms)


def find_rows(frame, *, label=None, index=None, group=None, row=None, class_names=None,
              rows_column: str = "row") -> np.ndarray:
    """Rows of a tidy samples table matching every given criterion (AND across criteria, OR within one).

    ``frame``: a pandas DataFrame, one sample per row, with the columns the criteria use: ``label`` (class
    indices), ``index`` (the sample's index in its dataset), ``group`` (e.g. ``corrupt:label-corrupted``),
    ``row``. Each criterion is a value or a list; integer criteria also take ranges (``range(10, 21)`` or
    ``"10-20"``, inclusive); ``label`` also takes class names from ``class_names``; ``group`` matches a full
    group name or either half (``"corrupt"``, ``"label-corrupted"``). Returns the ``rows_column`` values of
    the matching rows (their positions if the table has no such column), sorted."""
    criteria = {"label": label, "index": index, "group": group, "row": row}
    hit = np.ones(len(frame), bool)
    for key, value in criteria.items():
        if value is None:
            continue
        if key not in frame.columns:
            raise ValueError(f"cannot search by {key}: the table has no {key!r} column "
                             f"(columns: {', '.join(map(str, frame.columns))})")
        col = frame[key].to_numpy()
        if key == "group":
            hit &= _match_groups(col, value)
        elif key == "label":
            hit &= _match_labels(col, value, class_names)
        else:
            hit &= _match_ints(col, _int_terms(value, key))
    out = frame[rows_column].to_numpy()[hit] if rows_column in frame.columns else np.flatnonzero(hit)
    return np.sort(np.asarray(out, dtype=np.int64))


def parse_query(text: str) -> dict:
    """Criteria for :func:`find_rows` from a search box: space-separated ``key:value[,value...]`` terms with
    keys ``label``, ``index``, ``group``, ``row`` (``class`` means label); a bare number or range is an
    index. Example: ``"label:3,5 group:corrupt index:100-199"``."""
    if not isinstance(text, str):
        raise TypeError(f"query must be a string, got {type(text).__name__}")
    out: dict = {}
    for token in text.split():
        key, sep, value = token.partition(":")
        if not sep:
            key, value = "index", token
        key = {"class": "label", "idx": "index"}.get(key.lower(), key.lower())
        if key not in QUERY_KEYS:
            raise ValueError(f"query: unknown key {key!r} in {token!r}; use {', '.join(QUERY_KEYS)} "
                             "(e.g. 'label:3 group:corrupt index:10-20')")
        values = [v for v in value.split(",") if v]
        if not values:
            raise ValueError(f"query: {token!r} gives no value after '{key}:'")
        out.setdefault(key, []).extend(values)
    return out


def search(frame, text: str, *, class_names=None, rows_column: str = "row") -> np.ndarray:
    """:func:`find_rows` with the criteria of :func:`parse_query` (an empty query matches every row)."""
    return find_rows(frame, class_names=class_names, rows_column=rows_column, **parse_query(text))


# -- saved selections ----------------------------------------------------------------------------------------
class Selections:
    """Named saved selections: name -> sorted distinct rows. ``n`` (optional) bounds the rows to [0, n).

    Plain data in and out (:meth:`to_state` / :meth:`from_state` give and take ``{name: [rows]}``), so an
    app keeps them in its state and share link."""

    MAX_NAME = 64

    def __init__(self, n: int | None = None):
        self.n = None if n is None else check_int(n, "n", min_value=0)
        self._sel: dict[str, list[int]] = {}

    def _name(self, name) -> str:
        if not isinstance(name, str) or not name.strip() or len(name.strip()) > self.MAX_NAME:
            raise ValueError(f"selection name must be a non-empty string of at most {self.MAX_NAME} "
                             f"characters, got {name!r}")
        return name.strip()

    def _rows(self, rows) -> list[int]:
        rows = np.asarray(rows)
        if rows.dtype == bool:
            if self.n is not None and len(rows) != self.n:
                raise ValueError(f"rows as a mask must have length {self.n}, got {len(rows)}")
            rows = np.flatnonzero(rows)
        if rows.ndim != 1 or (rows.size and not np.issubdtype(rows.dtype, np.integer)):
            raise ValueError(f"rows must be a list of row indices or a boolean mask, got {rows!r}")
        hi = None if self.n is None else self.n - 1
        if rows.size and (rows.min() < 0 or (hi is not None and rows.max() > hi)):
            raise ValueError(f"rows must lie in [0, {'inf' if hi is None else hi}], "
                             f"got [{rows.min()}, {rows.max()}]")
        return sorted({int(r) for r in rows})

    def save(self, name: str, rows, *, overwrite: bool = True) -> list[int]:
        """Keep ``rows`` (indices or a boolean mask) under ``name``; returns the stored rows."""
        name = self._name(name)
        if not overwrite and name in self._sel:
            raise ValueError(f"a selection named {name!r} exists already")
        self._sel[name] = self._rows(rows)
        return list(self._sel[name])

    def get(self, name: str) -> np.ndarray:
        name = self._name(name)
        if name not in self._sel:
            raise KeyError(f"no saved selection {name!r} (saved: {', '.join(self._sel) or 'none'})")
        return np.asarray(self._sel[name], dtype=np.int64)

    def delete(self, name: str) -> None:
        self.get(name)
        del self._sel[self._name(name)]

    def rename(self, old: str, new: str) -> None:
        rows = self.get(old)
        new = self._name(new)
        if new in self._sel and new != self._name(old):
            raise ValueError(f"a selection named {new!r} exists already")
        del self._sel[self._name(old)]
        self._sel[new] = rows.tolist()

    @property
    def names(self) -> list[str]:
        return list(self._sel)

    def __len__(self) -> int:
        return len(self._sel)

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and name.strip() in self._sel

    def to_state(self) -> dict:
        return {k: list(v) for k, v in self._sel.items()}

    @classmethod
    def from_state(cls, state, *, n: int | None = None) -> Selections:
        """Rebuild from :meth:`to_state` (every name and row checked again)."""
        if state is None:
            state = {}
        if not isinstance(state, dict):
            raise TypeError(f"selections must be a dict of name -> rows, got {type(state).__name__}")
        out = cls(n)
        for name, rows in state.items():
            out.save(name, rows)
        return out
