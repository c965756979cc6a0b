"""``ExplorerSession``: the margin explorer without widgets.

Train (or load, or take) a classifier on MNIST or your own data with a chosen corruption, solve the exact
margins of N training samples, and explore them: two 2-D embeddings (:meth:`embed`), per-sample details
(:meth:`select`: boundary point, perturbation, distance to every class, margin status, the nearest training
sample with another label before and after corruption), margins by seed-000 group (:meth:`histogram`),
a margin range highlighted in both views (:meth:`select_range`) and the selection as a table
(:meth:`selection_frame`, :meth:`export_csv`). The selection toolkit and certification (search, lasso rows,
isolate, saved selections, nearest neighbours, :meth:`certify`) are in :mod:`._explorer_tools`. Models,
margins and embeddings are cached on disk (:mod:`._explorer_store`). The view
(:class:`marginlab.widgets.MarginExplorer`) draws what this returns.
"""

from __future__ import annotations

import time

import numpy as np

from .._validation import check_choice, check_int
from ._explorer_data import (
    check_model,
    image_shape_for,
    load_mnist_data,
    own_data,
    release_memory,
    split_and_corrupt,
)
from ._explorer_store import MARGIN_FIELDS, Store, array_digest, explorer_cache_dir, key, source_digest
from ._explorer_tools import CERT_GROUPS, ExplorerTools
from .base import Session, SessionError
from .explorer_settings import COLOR_BY, ExplorerSettings

__all__ = ["ExplorerSession", "ExplorerSettings", "COLOR_BY", "VIEW_SETTINGS", "CERT_GROUPS"]

# settings that apply to a run at once, without a new run
VIEW_SETTINGS = frozenset({"embeddings", "layers", "colors", "correct_only", "perplexity", "n_neighbors",
                           "min_dist", "histogram_color"})
NO_DATA = "no data yet: press 'Train / load + margins' first"


class ExplorerSession(ExplorerTools, Session):
    """The explorer's state and pipeline. ``ExplorerSession(**settings)`` (see :class:`ExplorerSettings`);
    ``model`` (any ``torch.nn.Module`` classifier returning logits) is explored instead of training one;
    ``data=(X, y)`` (X (n, ...), integer labels) replaces MNIST; ``image_shape`` ``(h, w)``, ``"auto"`` or
    None (no image panels). ``cache_dir``: see :func:`explorer_cache_dir`; ``umap_process`` fits UMAP in a
    process of its own (the kernel stays ~500 MB lighter); ``method_options`` configure the margin method."""

    app = "explorer"
    Settings = ExplorerSettings

    def __init__(
        self,
        settings=None,
        *,
        model=None,
        data=None,
        image_shape="auto",
        root=None,
        cache_dir=None,
        chunk_size: int = 250,
        umap_process: bool = True,
        method_options: dict | None = None,
        on_progress=None,
        **changes,
    ):
        self.custom_model = model
        if model is not None and data is None:
            raise SessionError("model needs data=(X, y): the samples to explore, in the model's input shape")
        self.custom_data = None if data is None else own_data(data)
        if model is not None:  # the model's outputs are the classes (labels must be among them)
            self.custom_data = own_data(data, check_model(model, self.custom_data.X[:2]))
        if self.custom_data is not None and (settings is None or settings.data_source != "custom"):
            changes.setdefault("data_source", "custom")
        self.image_shape_request = image_shape
        if self.custom_data is not None:
            image_shape_for(self.custom_data.input_shape, image_shape)  # a wrong shape fails here, not later
        self.root, self.chunk_size = root, check_int(chunk_size, "chunk_size", min_value=1)
        self.umap_process, self.method_options = bool(umap_process), dict(method_options or {})
        self.store = Store(explorer_cache_dir(cache_dir))
        self.model = self.model_key = self.train_data = self.rows = self.result = self.solved = None
        self.groups = self.maxmargin = self.details = self.selected = self.image_shape = None
        self.embeddings, self.variance = [None, None], [None, None]
        self.highlighted, self.highlight = np.zeros(0, dtype=np.int64), None
        self.timings, self.from_cache, self.run_settings = {}, {}, None
        from ..analysis.selection import Selections

        self.selections, self.neighbour_settings, self.isolate = Selections(), None, False
        self.query = self.highlight_rows = self.cert = self.neighbour_rows = None
        super().__init__(settings, on_progress=on_progress, **changes)

    def _checked(self, settings):
        settings = super()._checked(settings)
        if settings.data_source == "custom" and getattr(self, "custom_data", None) is None:
            raise SessionError("data_source 'custom' needs your data: MarginExplorer(data=(X, y))")
        return settings

    @property
    def layer_names(self) -> tuple[str, ...]:
        """The representations a view can embed: every layer of a marginlab model, the input otherwise."""
        return tuple(getattr(self.model, "layer_names", ("input",))) if self.model is not None else ("input",)

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.train_data.class_names) if self.train_data is not None else ()

    def update(self, **changes):
        """Change settings. View settings (embeddings, layers, colours, correct-only) apply at once to a run
        (re-embedding the views whose method or layer changed); the others take effect at the next
        :meth:`run`."""
        old = self.settings
        new = super().update(**changes)
        if self.result is not None and set(changes) <= VIEW_SETTINGS:
            for side in range(2):
                method = new.embeddings[side]
                if (method, new.layers[side], new.embed_params(method)) != (
                    old.embeddings[side], old.layers[side], old.embed_params(old.embeddings[side])
                ):
                    try:
                        self.embed(side)
                    except Exception:
                        self._settings = old
                        raise
        return new

    # -- the pipeline ----------------------------------------------------------------------------------------
    def run(self) -> dict:
        """Train or load the model, compute (or load) the margins of N samples and their maximum margins,
        embed both views. Returns the timings; progress goes to ``on_progress``."""
        t0 = time.perf_counter()
        s = self.settings
        self.from_cache = {}
        self.progress(0.0, "loading data ...")
        train, val = self._data(s)
        if s.n_samples > len(train):
            raise SessionError(
                f"n_samples = {s.n_samples} is larger than the training set ({len(train)} "
                f"samples, {train.meta.get('origin', train.source)}); choose n_samples <= "
                f"{len(train)}"
            )
        self.model, self.model_key = self._model(s, train, val)
        self.train_data, self.run_settings = train, s
        self.image_shape = image_shape_for(train.input_shape, self.image_shape_request)
        release_memory()  # the training loop's temporaries
        self.timings["model"] = time.perf_counter() - t0
        self.rows = np.sort(
            np.random.default_rng(s.seed + 1).choice(len(train), size=s.n_samples, replace=False)
        )
        self._margins(s)
        from ..groups import sample_groups

        kind = None if train.corruption is None or not train.corrupted.any() else train.corruption
        self.groups = sample_groups(train.corrupted[self.rows], kind)
        self.highlighted, self.highlight, self.selected, self.details = (
            np.zeros(0, np.int64),
            None,
            None,
            None,
        )
        self._reset_tools()
        t2 = time.perf_counter()
        self.maxmargin = self._max_margins()
        self.timings["max_margins"] = time.perf_counter() - t2
        self.embeddings, self.variance = [None, None], [None, None]
        if any(layer not in self.layer_names for layer in s.layers):  # a new model may have other layers
            self._settings = s.replace(
                layers=tuple(lay if lay in self.layer_names else "input" for lay in s.layers)
            )
        for side in range(2):
            self.embed(side)
        self.progress(1.0, "done")
        self.timings["total"] = time.perf_counter() - t0
        return dict(self.timings)

    def _data(self, s):
        if s.data_source == "custom":
            return split_and_corrupt(self.custom_data, s, s.seed, corrupt_labels=self.custom_model is None)
        return load_mnist_data(s, self.root, s.seed)

    def _model(self, s, train, val):
        from ..models import load_model

        if self.custom_model is not None:
            K = check_model(self.custom_model, train.X[:2])
            if train.y.max() >= K:
                raise SessionError(f"data: labels reach {train.y.max()}, the model has {K} outputs")
            params = [p.detach().cpu().numpy() for p in self.custom_model.state_dict().values()]
            self.from_cache["model"] = False
            return self.custom_model.cpu().eval(), key(["custom", array_digest(*params), train.source])
        base = {k: getattr(s, k) for k in ("n_train", "corruption", "seed", "val_fraction")}
        base.update(fraction=s.applied_fraction, data=train.source, n=len(train))
        if s.model_path:
            from pathlib import Path

            from .._files import file_digest

            if not Path(s.model_path).is_file():
                raise SessionError(f"model_path: the model file {s.model_path} does not exist")

            mk = key({**base, "model_file": file_digest(s.model_path)})
            model = load_model(s.model_path)
            if tuple(model.input_shape) != tuple(train.input_shape) and int(
                np.prod(model.input_shape)
            ) != int(train.n_features):
                raise SessionError(
                    f"{s.model_path} holds a model for inputs {model.input_shape}; the data has "
                    f"inputs {train.input_shape}"
                )
            self.from_cache["model"] = False
            return model.cpu().eval(), mk
        mk = key(
            {
                **base,
                **{k: getattr(s, k) for k in ("hidden", "epochs", "lr", "batch_size")},
                "hidden": list(s.hidden),
            }
        )
        path = self.store.path(mk, "model.pt")
        self.from_cache["model"] = path.exists()
        model = load_model(path) if path.exists() else self._train(s, train, val, path)
        return model.cpu().eval(), mk

    def _train(self, s, train, val, path):
        from ..models import MLP, save_model
        from ..train import fit

        model = MLP(train.input_shape, tuple(s.hidden), train.n_classes, seed=s.seed)

        def on_epoch(trainer, record):
            acc = f"epoch {record['epoch']}/{s.epochs}: acc {record['acc']:.3f}"
            self.progress(
                0.5 * record["epoch"] / max(s.epochs, 1),
                acc + (f", val acc {record['val_acc']:.3f}" if "val_acc" in record else ""),
            )

        fit(
            model,
            train,
            val=val,
            epochs=s.epochs,
            lr=s.lr,
            batch_size=s.batch_size,
            seed=s.seed,
            device="cpu",
            callbacks=[on_epoch],
            progress=False,
        )
        save_model(path, model, dataset=train, extra={"explorer_settings": repr(s)})
        return model

    def _method_options(self, s) -> dict:
        import importlib

        from ..margins import METHODS

        mod, cls = METHODS[s.method]
        opts = dict(self.method_options)
        if "reference" in getattr(importlib.import_module(f"marginlab.margins.{mod}"), cls).needs:
            opts.setdefault("reference", self.train_data.X)
        return opts

    def _margins(self, s):
        import importlib

        from ..margins import METHODS

        mods = [
            importlib.import_module(f"marginlab.margins.{m}") for m in (METHODS[s.method][0], "_core", "base")
        ]
        opts = {k: v for k, v in self.method_options.items()}
        path = self.store.path(
            self.model_key,
            "margins-"
            + key(
                {
                    "method": s.method,
                    "solver": source_digest(*mods),
                    "opts": opts,
                    "rows": key(self.rows.tolist()),
                }
            )
            + ".npz",
        )
        t1 = time.perf_counter()
        self.result = self.store.load_margins(path)
        self.from_cache["margins"] = self.result is not None
        if self.result is None:
            self.result = self.compute_margins(self.rows, s)
            self.store.save_margins(path, self.result)
            release_memory()  # the solver's per-chunk temporaries
        self.solved = np.ones(len(self.rows), dtype=bool)
        self.timings["margins"] = time.perf_counter() - t1

    def compute_margins(self, rows, s=None, *, progress: bool = True):
        """MarginResult for training rows ``rows`` (in chunks, reporting progress)."""
        from ..margins import MarginResult, compute_margins

        s = s or self.run_settings
        X, y = self.train_data.X[rows], self.train_data.y[rows]
        opts, parts = self._method_options(s), []
        for start in range(0, len(rows), self.chunk_size):
            stop = min(len(rows), start + self.chunk_size)
            parts.append(
                compute_margins(
                    self.model, X[start:stop], y=y[start:stop], method=s.method, layer=0, p=2, **opts
                )
            )
            if progress:
                self.progress(0.5 + 0.4 * stop / len(rows), f"margins {stop}/{len(rows)}")
        return parts[0] if len(parts) == 1 else MarginResult.concat(parts)

    def _max_margins(self) -> dict:
        """Seed 000's maximum margin (Eq. 4) of the explored rows: distance to, and index of, the nearest
        training sample with another label, ``"before"`` (original inputs and labels) and ``"after"``
        corruption (one chunked distance matrix, cached; a click only looks it up)."""
        from ..margins.nearest import maximum_margin

        path = self.store.path(self.model_key, f"maxmargin-{key(self.rows.tolist())}.npz")
        z = self.store.load_npz(path)
        if z is not None:
            return {w: (z[f"{w}_d"], z[f"{w}_j"]) for w in ("before", "after")}
        ds, rows, out = self.train_data, self.rows, {}
        for when, X, y in (("before", ds.X_original, ds.y_original), ("after", ds.X, ds.y)):
            out[when] = maximum_margin(X[rows], y[rows], reference_X=X, reference_y=y, return_index=True)
        self.store.save_npz(
            path, {f"{w}_{k}": v for w, (d, j) in out.items() for k, v in (("d", d), ("j", j))}
        )
        release_memory()  # the chunked distance matrices
        return out

    # -- the two views ---------------------------------------------------------------------------------------
    def _need_run(self):
        if self.result is None:
            raise SessionError(NO_DATA)

    def embed(self, side: int) -> np.ndarray:
        """(Re)compute view ``side``'s embedding (its method and layer from the settings; cached on disk)."""
        from .. import embed as membed

        self._need_run()
        side = check_int(side, "side", min_value=0, max_value=1)
        s = self.settings
        method, layer = s.embeddings[side], s.layers[side]
        if layer not in self.layer_names:
            raise SessionError(f"layer must be one of {list(self.layer_names)}, got {layer!r}")
        k = self.layer_names.index(layer)
        params = s.embed_params(method)
        need = membed.min_points(method, **{n: v for n, v in params.items() if n != "min_dist"})
        if len(self.rows) < need:
            named = ", ".join(f"{n} = {v:g}" for n, v in params.items() if n != "min_dist")
            raise SessionError(
                f"{method} embedding needs at least {need} points" + (f" with {named}" if named else "")
                + f"; only n_samples = {len(self.rows)} are explored. Increase n_samples, "
                + ("lower " + " / ".join(n for n in params if n != "min_dist") + ", " if named else "")
                + "or pick PCA."
            )
        # the default parameters keep the key they always had: caches of earlier versions stay valid
        parts = [method, k, s.seed, key(self.rows.tolist()), source_digest(membed)]
        if params != ExplorerSettings().embed_params(method):
            parts.append(params)
        path = self.store.path(self.model_key, "embed-" + key(parts) + ".npy")
        t0 = time.perf_counter()
        Z = self.store.load_npy(path)
        if Z is None:
            self.progress(0.9, f"computing {method} of {layer} for {len(self.rows)} points ...")
            Z = membed.embed(
                self.train_data.X[self.rows],
                method,
                model=self.model if k else None,
                layer=k,
                seed=s.seed,
                isolate=self.umap_process,
                **params,
            )
            self.store.save_npy(path, Z)
            release_memory()  # t-SNE's / UMAP's neighbour graphs and optimiser state
        self.timings[f"embed{side}"] = time.perf_counter() - t0
        self.embeddings[side] = Z
        self.variance[side] = membed.variance_ratio(Z, self.train_data.y_original[self.rows])
        return Z

    def color(self, key_: str):
        """``(values, kind, category names)`` colouring the explored samples by ``key_`` (see COLOR_BY)."""
        self._need_run()
        ds, rows, res = self.train_data, self.rows, self.result
        key_ = check_choice(key_, "color", COLOR_BY)
        if key_ == "margin":
            return res.margin.astype(np.float32), "continuous", None
        if key_ == "max margin":  # seed 000 Eq. 4, with the labels after corruption
            return self.maxmargin["after"][0].astype(np.float32), "continuous", None
        if key_ == "status":
            return np.asarray(res.status, dtype=str), "categorical", None
        if key_ == "class":
            return ds.y[rows], "categorical", list(ds.class_names)
        if key_ == "clean/corrupted":
            return np.where(ds.corrupted[rows], "corrupted", "clean"), "categorical", None
        if key_ == "correct/incorrect":
            return np.where(res.pred == ds.y[rows], "correct", "incorrect"), "categorical", None
        return self.groups, "categorical", None

    def hover(self) -> np.ndarray:
        """One line per explored sample: label (original -> corrupted), prediction, margin and status."""
        ds, rows, res = self.train_data, self.rows, self.result
        y, y0 = ds.y[rows], ds.y_original[rows]
        lab = np.where(y == y0, y.astype(str), np.char.add(np.char.add(y0.astype(str), "→"), y.astype(str)))
        text = [
            f"label {a}, pred {p}, margin {m:.3f}" + ("" if st == "converged" else f" ({st})")
            for a, p, m, st in zip(lab, res.pred, res.margin, res.status)
        ]
        return np.asarray(text, dtype=object)

    # -- one sample ------------------------------------------------------------------------------------------
    def nearest_other_label(self, r: int, when: str = "after") -> dict:
        """Nearest training sample with another label to explored row ``r`` (its maximum margin), ``"before"``
        or ``"after"`` corruption: ``{"index", "distance", "label"}``."""
        d, j = self.maxmargin[check_choice(when, "when", ("before", "after"))]
        k = int(j[r])
        y = self.train_data.y_original if when == "before" else self.train_data.y
        return {"index": k, "distance": float(d[r]), "label": int(y[k]) if k >= 0 else -1}

    def select(self, r: int) -> dict:
        """Sample ``r`` (a row of the explored set): its boundary point, perturbation, margin, status, class
        pair, distance to every class and nearest other-label training sample before and after corruption."""
        self._need_run()
        r = check_int(r, "sample", min_value=0, max_value=len(self.rows) - 1)
        t0 = time.perf_counter()
        if not self.solved[r]:
            res = self.compute_margins(self.rows[r : r + 1], progress=False)
            for f in MARGIN_FIELDS:
                if getattr(self.result, f) is not None:
                    getattr(self.result, f)[r] = getattr(res, f)[0]
            self.solved[r] = True
        ds, res, i = self.train_data, self.result, int(self.rows[r])
        x = ds.X[i]
        point = res.point[r].reshape(x.shape)
        diff = point - x.astype(np.float64)
        det = {
            "row": r,
            "index": i,
            "label": int(ds.y[i]),
            "original_label": int(ds.y_original[i]),
            "corrupted": bool(ds.corrupted[i]),
            "group": str(self.groups[r]),
            "pred": int(res.pred[r]),
            "boundary_class": int(res.boundary_class[r]),
            "margin": float(res.margin[r]),
            "residual": float(res.residual[r]),
            "converged": bool(res.converged[r]),
            "status": str(res.status[r]),
            "verified": bool(res.verified[r]),
            "agree": int(res.agree[r]),
            "distances": res.distances[r].copy(),
            "sample": x,
            "point": point,
            "perturbation": diff,
            "perturbation_norm": float(np.linalg.norm(diff)),
            "nearest": {w: self.nearest_other_label(r, w) for w in ("before", "after")},
            "bracket": {k: v[0] for k, v in self.bracket([r]).items() if k != "rows"},
        }
        self.selected, self.details = r, det
        det["seconds"] = time.perf_counter() - t0
        return det

    # -- margins by group and ranges -------------------------------------------------------------------------
    def histogram_mask(self) -> np.ndarray:
        """Samples in the histogram: solved, and correctly classified if ``correct_only`` (seed 000)."""
        self._need_run()
        mask = np.isfinite(self.result.margin)
        if self.settings.correct_only:
            mask &= self.result.pred == self.train_data.y[self.rows]
        return mask

    def histogram(self) -> tuple[np.ndarray, np.ndarray]:
        """``(margins, groups)`` of the explored samples, NaN where the histogram leaves a sample out; the
        groups are seed 000's or, with ``histogram_color="certified"``, :data:`CERT_GROUPS`."""
        groups = self.cert_groups() if self.settings.histogram_color == "certified" else self.groups
        return np.where(self.histogram_mask(), self.result.margin, np.nan), groups

    def histogram_counts(self) -> dict:
        """Samples per group in the histogram."""
        margins, groups = self.histogram()
        names, counts = np.unique(groups[np.isfinite(margins)].astype(str), return_counts=True)
        return dict(zip(names.tolist(), counts.tolist()))

    def select_range(self, lo: float, hi: float, group: str | None = None) -> np.ndarray:
        """Highlight the explored samples with margin in [lo, hi] (and in ``group``, a seed-000 name, or
        None / ``"all groups"`` for all). Returns their rows."""
        self._need_run()
        lo, hi = float(lo), float(hi)
        if not lo <= hi:
            raise SessionError(f"range must have lo <= hi, got ({lo:g}, {hi:g})")
        mask = self.histogram_mask() & (self.result.margin >= lo) & (self.result.margin <= hi)
        if group not in (None, "all groups"):
            names = sorted(set(self.groups.tolist()))
            if group not in names:
                raise SessionError(f"group must be one of {names}, got {group!r}")
            mask &= self.groups == group
        self._highlight(np.flatnonzero(mask))
        self.highlight = (lo, hi, group)
        return self.highlighted

    def clear_highlight(self) -> None:
        self._highlight(np.zeros(0, dtype=np.int64))

    # -- export ----------------------------------------------------------------------------------------------
    def selection_frame(self, rows=None):
        """A tidy table of explored ``rows`` (default: the highlighted ones, else all): row, training index,
        label, original label, prediction, margin, status, maximum margin before/after corruption, group
        and both views' embedding coordinates."""
        import pandas as pd

        self._need_run()
        rows = (
            (self.highlighted if len(self.highlighted) else np.arange(len(self.rows)))
            if rows is None
            else (np.asarray(rows, dtype=np.int64))
        )
        ds, res, idx = self.train_data, self.result, self.rows[rows]
        cols = {
            "row": rows,
            "index": idx,
            "label": ds.y[idx],
            "original_label": ds.y_original[idx],
            "prediction": res.pred[rows],
            "margin": res.margin[rows],
            "status": np.asarray(res.status)[rows],
            "verified": res.verified[rows],
            "max_margin": self.maxmargin["after"][0][rows],
            "max_margin_before": self.maxmargin["before"][0][rows],
            "group": self.groups[rows],
        }
        for side, name in enumerate(("left", "right")):
            Z = self.embeddings[side]
            label = f"{name}_{self.settings.embeddings[side]}_{self.settings.layers[side]}"
            cols[f"{label}_x"] = np.full(len(rows), np.nan) if Z is None else Z[rows, 0]
            cols[f"{label}_y"] = np.full(len(rows), np.nan) if Z is None else Z[rows, 1]
        return pd.DataFrame(cols)

    def export_csv(self, path=None, rows=None) -> str:
        """The :meth:`selection_frame` as CSV text, also written (atomically) to ``path`` if given."""
        from .._files import atomic_write

        text = self.selection_frame(rows).to_csv(index=False)
        if path is not None:
            atomic_write(path, lambda f: f.write(text), binary=False)
        return text

    # -- state -----------------------------------------------------------------------------------------------
    def _state_extra(self) -> dict:
        out = {
            "model": "custom" if self.custom_model is not None else None,
            "data": "custom" if self.custom_data is not None else None,
        }
        if self.selected is not None:
            out["selected"] = int(self.selected)
        if self.highlight is not None:
            out["highlight"] = list(self.highlight)
        out.update(self._tools_state())
        return out

    def _restore_extra(self, state: dict) -> None:
        self._restore_tools(state)

    @classmethod
    def from_state(cls, state: dict, *, run: bool = True, **kwargs) -> ExplorerSession:
        """Rebuild from :meth:`state` (your own model and data are not in a state: pass them again as
        ``model=`` / ``data=``). ``run=True`` runs the pipeline (instant from the cache) and restores the
        selected sample and the highlighted range."""
        if not isinstance(state, dict):
            raise SessionError(f"state must be a dict, got {type(state).__name__}")
        for what in ("model", "data"):
            if state.get(what) == "custom" and kwargs.get(what) is None:
                raise SessionError(
                    f"this state explores your own {what}: pass it again, e.g. "
                    f"MarginExplorer.from_state(state, {what}=...)"
                )
        session = super().from_state(state, **kwargs)
        if run:
            session.run()
            if state.get("highlight"):
                session.select_range(*state["highlight"])
            if state.get("selected") is not None:
                session.select(int(state["selected"]))
            session._replay_tools(state)
        return session
