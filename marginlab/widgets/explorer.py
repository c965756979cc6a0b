"""``MarginExplorer``: train (or load) an MLP on MNIST with a chosen corruption, compute exact margins for N
training samples, and explore them in two linked 2-D embeddings, per-sample detail views and margin
histograms by seed-000 group (``clean:clean``, ``clean:label-corrupted``, ``corrupt:label-corrupted`` ...).

The app only glues the numeric core together (``marginlab.data``, ``corruption``, ``models``, ``train``,
``margins``, ``embed``) and the pure figure builders in ``marginlab.viz``. Models, margins and embeddings are
cached on disk (atomic writes), keyed by everything that determines them, so reopening is instant.
Every callback is a plain method, testable without a frontend; errors go to the message widget.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import os
import time
from pathlib import Path

import numpy as np

from .._files import atomic_write
from .._validation import check_choice, check_fraction, check_int, check_widths

__all__ = ["MarginExplorer", "explorer_cache_dir", "COLOR_BY"]

COLOR_BY = ("margin", "max margin", "class", "clean/corrupted", "correct/incorrect", "group")
DATA_CHOICES = ("auto", "full")
_MARGIN_FIELDS = (
    "margin",
    "point",
    "pred",
    "boundary_class",
    "residual",
    "top_two",
    "converged",
    "distances",
    "label",
    "skipped",
    "iterations",
    "evaluations",
    "seconds",
)


def explorer_cache_dir(cache_dir=None) -> Path:
    """``cache_dir``, else ``$MARGINLAB_CACHE/explorer``, else ``~/.cache/marginlab/explorer``."""
    if cache_dir is not None:
        return Path(cache_dir)
    base = os.environ.get("MARGINLAB_CACHE")
    return Path(base) / "explorer" if base else Path.home() / ".cache" / "marginlab" / "explorer"


def _key(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _embed_version() -> str:
    """Digest of ``marginlab/embed.py``: embeddings cached by older code are not reused."""
    from .. import embed

    return hashlib.sha1(Path(embed.__file__).read_bytes()).hexdigest()[:12]




def _release_memory():
    """Collect garbage and hand freed heap pages back to the OS (glibc ``malloc_trim``). Training, the margin
    solver, t-SNE and UMAP free hundreds of MB of temporaries that glibc otherwise keeps in the process's
    arenas, where they count against the notebook's memory limit (Binder: 1-2 GB). A no-op elsewhere."""
    import gc
    import sys

    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # musl or another libc: nothing to trim
            pass


def _parse_hidden(text) -> tuple[int, ...]:
    if isinstance(text, str):
        parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p]
        try:
            text = tuple(int(p) for p in parts)
        except ValueError:
            raise ValueError(
                f"hidden widths must be integers separated by commas (e.g. '256' or '256,128'), got {text!r}"
            ) from None
        if not text:
            raise ValueError("give at least one hidden layer width (e.g. '256')")
    return check_widths(text, "hidden")


class MarginExplorer:
    """The MNIST margin explorer app (ipywidgets + plotly FigureWidgets). Display it in a notebook cell.

    Parameters set the initial UI values: ``data`` (``"auto"``: full MNIST when its files are cached or in
    ``root``, else the bundled 5,000-image subset; ``"full"``: full MNIST or an error), ``n_train`` (use only
    that many training images, for quick runs), ``hidden`` widths, ``epochs``, ``lr``, ``batch_size``,
    ``corruption`` (``none, label, gaussian``) and its ``fraction``, ``n_samples`` (N samples whose margins
    are computed), margin ``method``, ``embeddings`` (method of the left and right view), ``seed``,
    ``cache_dir`` (see :func:`explorer_cache_dir`), ``model_path`` (a saved model to load, not train).
    ``run=True`` trains/loads and computes everything at construction. ``umap_process`` fits UMAP in a
    process of its own (see :func:`marginlab.embed.embed`'s ``isolate``): the kernel stays ~500 MB lighter
    for a ~10 s longer UMAP; ``False`` keeps numba in the kernel (faster second UMAPs, more memory).
    """

    def __init__(
        self,
        *,
        data: str = "auto",
        root=None,
        n_train: int | None = None,
        val_fraction: float = 0.1,
        hidden=(256,),
        epochs: int = 10,
        lr: float = 0.01,
        batch_size: int = 64,
        corruption: str = "none",
        fraction: float = 0.2,
        n_samples: int = 1000,
        method: str = "batched",
        method_options: dict | None = None,
        embeddings=("umap", "pca"),
        layers=("input", "input"),
        seed: int = 0,
        cache_dir=None,
        model_path=None,
        chunk_size: int = 250,
        umap_process: bool = True,
        run: bool = False,
    ):
        import ipywidgets as W

        self.root = root
        self.val_fraction = check_float_open(val_fraction)
        self.method_options = dict(method_options or {})
        self.seed = check_int(seed, "seed", min_value=0)
        self.chunk_size = check_int(chunk_size, "chunk_size", min_value=1)
        self.umap_process = bool(umap_process)
        self.cache_dir = explorer_cache_dir(cache_dir)
        # state filled by run()
        self.model = None
        self.model_key = None
        self.train_data = None
        self.rows = None  # indices into train_data of the N explored samples
        self.result = None  # MarginResult for those rows
        self.solved = None  # (N,) bool: rows whose margins are known
        self.groups = None
        self.embeddings = [None, None]
        self.highlighted = np.zeros(0, dtype=np.int64)
        self.selected = None
        self.details = None
        self.last_error = None
        self.variance = [None, None]
        self.maxmargin = None
        self._quiet = False
        self.timings = {}
        self.from_cache = {}

        st = {"description_width": "initial"}
        lay = W.Layout(width="auto")
        self.w_data = W.Dropdown(
            options=DATA_CHOICES,
            value=check_choice(data, "data", DATA_CHOICES),
            description="data",
            style=st,
            layout=W.Layout(width="140px"),
        )
        self.w_n_train = W.IntText(
            value=0 if n_train is None else int(n_train),
            description="n_train (0=all)",
            style=st,
            layout=W.Layout(width="170px"),
        )
        self.w_hidden = W.Text(
            value=",".join(str(h) for h in _parse_hidden(hidden)),
            description="hidden",
            style=st,
            layout=W.Layout(width="150px"),
        )
        self.w_epochs = W.IntText(
            value=epochs, description="epochs", style=st, layout=W.Layout(width="120px")
        )
        self.w_lr = W.FloatText(value=lr, description="lr", style=st, layout=W.Layout(width="120px"))
        self.w_batch = W.IntText(
            value=batch_size, description="batch", style=st, layout=W.Layout(width="120px")
        )
        self.w_corruption = W.Dropdown(
            options=("none", "label", "gaussian"),
            style=st,
            value=check_choice(corruption, "corruption", ("none", "label", "gaussian")),
            description="corruption",
            layout=W.Layout(width="190px"),
        )
        self.w_fraction = W.FloatSlider(
            value=check_fraction(fraction, "fraction"),
            min=0.0,
            max=1.0,
            step=0.05,
            description="fraction",
            style=st,
            layout=W.Layout(width="230px"),
        )
        self.w_n = W.IntText(
            value=n_samples, description="N samples", style=st, layout=W.Layout(width="150px")
        )
        from ..margins import METHODS

        self.w_method = W.Dropdown(
            options=list(METHODS),
            value=check_choice(method, "method", METHODS),
            description="margin method",
            style=st,
            layout=W.Layout(width="230px"),
        )
        self.w_model_path = W.Text(
            value="" if model_path is None else str(model_path),
            placeholder="path/to/model.pt (empty: train)",
            description="model file",
            style=st,
            layout=W.Layout(width="330px"),
        )
        self.w_run = W.Button(
            description="Train / load + margins", button_style="primary", layout=W.Layout(width="210px")
        )
        self.w_run.on_click(lambda _b: self.run())
        self.w_progress = W.IntProgress(value=0, min=0, max=1, description="", layout=W.Layout(width="300px"))
        self.w_status = W.HTML(value="")
        self.w_message = W.HTML(value="")

        # embedding views
        self.w_embed = []
        self.figs = []
        self.w_ratio = []
        methods = tuple(embeddings)
        layers = tuple(layers)
        if len(methods) != 2 or len(layers) != 2:
            raise ValueError("embeddings and layers must each name two views (left, right)")
        from ..embed import EMBED_METHODS

        for side in range(2):
            m = W.Dropdown(
                options=EMBED_METHODS,
                value=check_choice(methods[side], "embeddings", EMBED_METHODS),
                description="embed",
                layout=W.Layout(width="150px"),
            )
            layer = W.Dropdown(
                options=[str(layers[side])],
                value=str(layers[side]),
                description="layer",
                layout=W.Layout(width="170px"),
            )
            color = W.Dropdown(
                options=COLOR_BY,
                value="margin" if side == 0 else "class",
                description="colour",
                layout=W.Layout(width="200px"),
            )
            m.observe(lambda ch, s=side: self._on_view_change(s), names="value")
            layer.observe(lambda ch, s=side: self._on_view_change(s), names="value")
            color.observe(lambda ch, s=side: self._redraw_embedding(s), names="value")
            self.w_embed.append({"method": m, "layer": layer, "color": color})
            self.figs.append(self._empty_figure("embedding: press the button above"))
            self.w_ratio.append(W.HTML(value=""))

        # detail views
        from ..viz.images import image_panels_figure, margin_bars_figure

        self.fig_images = self._widget(image_panels_figure(self._image_panels(None)))
        self.fig_bars = self._widget(margin_bars_figure(np.full(10, np.nan), title="distance to each class"))
        self.w_details = W.HTML(value="<i>click a point in an embedding</i>")

        # histogram + range selection
        self.fig_hist = self._empty_figure("margins by group", width=760, height=280)
        self.w_group = W.Dropdown(
            options=["all groups"], value="all groups", description="group", layout=W.Layout(width="280px")
        )
        self.w_range = W.FloatRangeSlider(
            value=(0.0, 1.0),
            min=0.0,
            max=1.0,
            step=0.001,
            description="range",
            readout_format=".3f",
            continuous_update=False,
            layout=W.Layout(width="420px"),
        )
        self.w_correct_only = W.Checkbox(
            value=True,
            description="correctly classified only (seed 000)",
            indent=False,
            layout=W.Layout(width="280px"),
        )
        self.w_apply = W.Button(description="highlight range", layout=W.Layout(width="140px"))
        self.w_clear = W.Button(description="clear", layout=W.Layout(width="80px"))
        self.w_apply.on_click(lambda _b: self.select_range(*self.w_range.value, group=self.w_group.value))
        self.w_clear.on_click(lambda _b: self.clear_highlight())
        self.w_range.observe(self._on_range, names="value")
        self.w_correct_only.observe(
            lambda ch: None if self._quiet else self._redraw_histogram(), names="value"
        )

        views = [
            W.VBox(
                [
                    W.HBox(
                        [self.w_embed[s]["method"], self.w_embed[s]["layer"], self.w_embed[s]["color"]],
                        layout=lay,
                    ),
                    self.figs[s],
                    self.w_ratio[s],
                ]
            )
            for s in range(2)
        ]
        self.widget = W.VBox(
            [
                W.HTML("<b>MNIST margin explorer</b>"),
                W.HBox(
                    [self.w_data, self.w_n_train, self.w_hidden, self.w_epochs, self.w_lr, self.w_batch],
                    layout=W.Layout(flex_flow="row wrap"),
                ),
                W.HBox(
                    [self.w_corruption, self.w_fraction, self.w_n, self.w_method],
                    layout=W.Layout(flex_flow="row wrap"),
                ),
                W.HBox(
                    [self.w_model_path, self.w_run, self.w_progress, self.w_status],
                    layout=W.Layout(flex_flow="row wrap"),
                ),
                self.w_message,
                W.HBox(views, layout=W.Layout(flex_flow="row wrap")),
                W.HBox([self.fig_images], layout=lay),
                W.HBox([self.fig_bars, self.w_details], layout=W.Layout(flex_flow="row wrap")),
                W.HBox([self.w_group, self.w_correct_only], layout=W.Layout(flex_flow="row wrap")),
                W.HBox([self.w_range, self.w_apply, self.w_clear], layout=W.Layout(flex_flow="row wrap")),
                self.fig_hist,
            ]
        )
        if run:
            self.run()

    # ------------------------------------------------------------------ display and messages
    def _repr_mimebundle_(self, **kwargs):
        from ._display import sync_figures

        sync_figures(self.widget)
        return self.widget._repr_mimebundle_(**kwargs)

    def _ipython_display_(self):
        from ._display import display_app

        display_app(self.widget)

    @staticmethod
    def _widget(fig):
        import plotly.graph_objects as go

        return go.FigureWidget(fig)

    def _empty_figure(self, title, width=480, height=440):
        import plotly.graph_objects as go

        fig = go.Figure(
            layout=dict(
                title=dict(text=title, font=dict(size=13)),
                width=width,
                height=height,
                margin=dict(l=10, r=10, t=40, b=10),
            )
        )
        return go.FigureWidget(fig)

    def _info(self, text):
        self.w_status.value = html.escape(text)

    def _error(self, text):
        self.last_error = text
        self.w_message.value = (
            f"<div style='color:#a00;border-left:3px solid #a00;padding-left:6px'>{html.escape(text)}</div>"
        )

    def _clear_error(self):
        self.last_error = None
        self.w_message.value = ""

    @contextlib.contextmanager
    def _guard(self, action):
        """Show any error of ``action`` in the message widget instead of a traceback."""
        try:
            yield
        except Exception as exc:  # the app must never raise into the frontend
            self._error(f"{action}: {exc}")
            self._info("")
        finally:
            self.w_progress.bar_style = ""

    def _progress(self, value, total, label=""):
        self.w_progress.max = max(int(total), 1)
        self.w_progress.value = int(value)
        self.w_progress.description = label

    # ------------------------------------------------------------------ settings
    def settings(self) -> dict:
        """The current UI settings, validated (raises ``ValueError`` naming the bad one)."""
        from ..corruption import CORRUPTIONS

        n_train = check_int(self.w_n_train.value, "n_train", min_value=0)
        s = {
            "data": check_choice(self.w_data.value, "data", DATA_CHOICES),
            "n_train": n_train or None,
            "hidden": list(_parse_hidden(self.w_hidden.value)),
            "epochs": check_int(self.w_epochs.value, "epochs", min_value=0),
            "lr": float(self.w_lr.value),
            "batch_size": check_int(self.w_batch.value, "batch_size", min_value=1),
            "corruption": check_choice(self.w_corruption.value, "corruption", CORRUPTIONS),
            "fraction": check_fraction(self.w_fraction.value, "fraction"),
            "n_samples": check_int(self.w_n.value, "N samples", min_value=1),
            "method": str(self.w_method.value).strip(),
            "seed": self.seed,
            "val_fraction": self.val_fraction,
        }
        if not s["lr"] > 0:
            raise ValueError(f"lr must be > 0, got {s['lr']:g}")
        from ..margins import METHODS

        if s["method"].lower() not in METHODS:
            raise ValueError(f"margin method must be one of {', '.join(METHODS)}; got {s['method']!r}")
        if s["corruption"] == "none":
            s["fraction"] = 0.0
        return s

    # ------------------------------------------------------------------ pipeline
    def load_data(self, s: dict):
        """Training data for settings ``s``: MNIST train split, subset, train/val split, corruption."""
        from ..corruption import corrupt
        from ..data import load_mnist, train_val_split

        ds = load_mnist("train", root=self.root, offline_ok=(s["data"] == "auto"))
        if s["n_train"] is not None:
            if s["n_train"] > len(ds):
                raise ValueError(
                    f"n_train = {s['n_train']} is larger than the MNIST training data available "
                    f"({len(ds)} images, {ds.meta.get('origin')})"
                )
            ds = ds.subset(np.sort(np.random.default_rng(self.seed).permutation(len(ds))[: s["n_train"]]))
        train, val = (
            train_val_split(ds, val_size=s["val_fraction"], seed=self.seed)
            if s["val_fraction"] > 0
            else (ds, None)
        )
        if s["corruption"] != "none" and s["fraction"] > 0:
            train = corrupt(train, s["corruption"], s["fraction"], seed=self.seed)
        return train, val

    def _model_key(self, s, train, model_path):
        if model_path:
            digest = hashlib.sha1(Path(model_path).read_bytes()).hexdigest()[:16]
            base = {"model_file": digest}
        else:
            base = {k: s[k] for k in ("hidden", "epochs", "lr", "batch_size")}
        base.update({k: s[k] for k in ("n_train", "corruption", "fraction", "seed", "val_fraction")})
        base["data"] = train.source
        base["n"] = len(train)
        return _key(base)

    def get_model(self, s, train, val, model_path=None):
        """Load ``model_path``, else the cached model for these settings, else train one and cache it."""
        from ..models import MLP, load_model, save_model
        from ..train import fit

        key = self._model_key(s, train, model_path)
        path = self.cache_dir / key / "model.pt"
        if model_path:
            model = load_model(model_path)
            if tuple(model.input_shape) not in ((1, 28, 28), (784,), (28, 28)) or model.n_classes != 10:
                raise ValueError(
                    f"{model_path} holds a model for inputs {model.input_shape} with "
                    f"{model.n_classes} classes; the explorer needs an MNIST model (784 inputs, 10 classes)"
                )
            self.from_cache["model"] = False
        elif path.exists():
            model = load_model(path)
            self.from_cache["model"] = True
        else:
            model = MLP(train.input_shape, tuple(s["hidden"]), train.n_classes, seed=self.seed)
            epochs = s["epochs"]

            def on_epoch(trainer, record):
                self._progress(record["epoch"], epochs, "train")
                self._info(
                    f"epoch {record['epoch']}/{epochs}: acc {record['acc']:.3f}"
                    + (f", val acc {record['val_acc']:.3f}" if "val_acc" in record else "")
                )

            self._progress(0, epochs, "train")
            fit(
                model,
                train,
                val=val,
                epochs=epochs,
                lr=s["lr"],
                batch_size=s["batch_size"],
                seed=self.seed,
                device="cpu",
                callbacks=[on_epoch],
                progress=False,
            )
            save_model(path, model, dataset=train, extra={"explorer_settings": s})
            self.from_cache["model"] = False
        model = model.cpu().eval()
        return model, key

    @staticmethod
    def _solver_version(method) -> str:
        """Digest of the solver's source: margins cached by an older solver are not reused."""
        import importlib

        from ..margins import METHODS

        mods = (METHODS[method.lower()][0], "_core", "base")
        paths = [importlib.import_module(f"marginlab.margins.{m}").__file__ for m in mods]
        return hashlib.sha1(b"".join(Path(p).read_bytes() for p in paths)).hexdigest()[:12]

    def _margin_path(self, s, rows):
        mk = _key(
            {
                "method": s["method"],
                "solver": self._solver_version(s["method"]),
                "opts": self.method_options,
                "rows": _key(rows.tolist()),
                "p": 2,
                "layer": 0,
            }
        )
        return self.cache_dir / self.model_key / f"margins-{mk}.npz"

    def compute_margins(self, rows, s, *, progress=True):
        """MarginResult for training rows ``rows`` (chunks, so the progress bar moves)."""
        from ..margins import MarginResult, compute_margins

        X = self.train_data.X[rows]
        y = self.train_data.y[rows]
        parts = []
        for start in range(0, len(rows), self.chunk_size):
            stop = min(len(rows), start + self.chunk_size)
            parts.append(
                compute_margins(
                    self.model,
                    X[start:stop],
                    y=y[start:stop],
                    method=s["method"],
                    layer=0,
                    p=2,
                    **self.method_options,
                )
            )
            if progress:
                self._progress(stop, len(rows), "margins")
                self._info(f"margins {stop}/{len(rows)}")
        return parts[0] if len(parts) == 1 else MarginResult.concat(parts)

    def _load_margins(self, path):
        from ..margins import MarginResult

        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            kw = {f: (z[f] if f in z.files else None) for f in _MARGIN_FIELDS}
        return MarginResult(
            **kw,
            method=meta["method"],
            p=meta["p"],
            layer=meta["layer"],
            tol=meta["tol"],
            estimate=meta["estimate"],
        )

    @staticmethod
    def _save_margins(path, res):
        arrays = {f: getattr(res, f) for f in _MARGIN_FIELDS if getattr(res, f) is not None}
        arrays["meta"] = np.array(
            json.dumps(
                {
                    "method": res.method,
                    "p": res.p,
                    "layer": res.layer,
                    "tol": res.tol,
                    "estimate": bool(res.estimate),
                }
            )
        )
        atomic_write(path, lambda f: np.savez(f, **arrays))

    def run(self):
        """Train or load the model, compute (or load) the margins of N samples, embed, draw. The button."""
        with self._guard("run"):
            t0 = time.perf_counter()
            self._clear_error()
            self.from_cache = {}
            s = self.settings()
            self._info("loading data ...")
            train, val = self.load_data(s)
            n = s["n_samples"]
            if n > len(train):
                raise ValueError(
                    f"N samples = {n} is larger than the training set ({len(train)} images, "
                    f"{train.meta.get('origin', 'MNIST')} data); choose N <= {len(train)}"
                )
            model_path = self.w_model_path.value.strip() or None
            if model_path and not Path(model_path).exists():
                raise FileNotFoundError(f"model file {model_path} does not exist")
            self.train_data = train
            self.model, self.model_key = self.get_model(s, train, val, model_path)
            _release_memory()  # the training loop's temporaries
            self.timings["model"] = time.perf_counter() - t0
            rows = np.sort(np.random.default_rng(self.seed + 1).choice(len(train), size=n, replace=False))
            path = self._margin_path(s, rows)
            t1 = time.perf_counter()
            if path.exists():
                self.result = self._load_margins(path)
                self.from_cache["margins"] = True
            else:
                self.result = self.compute_margins(rows, s)
                self._save_margins(path, self.result)
                self.from_cache["margins"] = False
                _release_memory()  # the solver's per-chunk temporaries
            self.timings["margins"] = time.perf_counter() - t1
            self.rows = rows
            self.solved = np.ones(n, dtype=bool)
            self._settings = s
            self.groups = self._groups()
            self.highlighted = np.zeros(0, dtype=np.int64)
            self.selected = None
            t2 = time.perf_counter()
            self.maxmargin = self._load_max_margins(rows)
            _release_memory()  # the chunked distance matrices
            self.timings["max_margins"] = time.perf_counter() - t2
            layer_names = list(self.model.layer_names)
            for side in range(2):
                w = self.w_embed[side]["layer"]
                with self._hold():
                    cur = w.value
                    w.options = layer_names
                    w.value = cur if cur in layer_names else layer_names[0]
                self.embeddings[side] = None
            for side in range(2):
                self.update_embedding(side)
            self._setup_histogram()
            acc = float(np.mean(self.result.pred == self.train_data.y[rows]))
            self._progress(1, 1, "done")
            cached = ", ".join(k for k, v in self.from_cache.items() if v)
            self._info(
                f"{n} samples, train acc on them {acc:.3f}; {time.perf_counter() - t0:.1f} s"
                + (f" (from cache: {cached})" if cached else "")
            )

    @contextlib.contextmanager
    def _hold(self):
        """Change widget values without our observers reacting."""
        old, self._quiet = self._quiet, True
        try:
            yield
        finally:
            self._quiet = old

    def _groups(self):
        from ..groups import sample_groups

        ds = self.train_data
        kind = None if ds.corruption is None or not ds.corrupted.any() else ds.corruption
        return sample_groups(ds.corrupted[self.rows], kind)

    # ------------------------------------------------------------------ embeddings
    def _on_view_change(self, side):
        if self.result is None or self._quiet:
            return
        self.update_embedding(side)

    def update_embedding(self, side: int, *, method=None, layer=None):
        """(Re)compute view ``side``'s embedding (``method``/``layer`` change its controls first; cached on
        disk), then redraw it."""
        with self._guard(f"embedding ({'left' if side == 0 else 'right'})"):
            from ..embed import EMBED_METHODS, embed, min_points

            if self.result is None:
                raise ValueError("no data yet: press 'Train / load + margins' first")
            w = self.w_embed[side]
            with self._hold():
                if method is not None:
                    w["method"].value = check_choice(method, "embedding method", EMBED_METHODS)
                if layer is not None:
                    w["layer"].value = self.model.layer_names[self.model.resolve_layer(layer)]
            m, lname = w["method"].value, w["layer"].value
            k = self.model.resolve_layer(lname)
            need = min_points(m)
            if len(self.rows) < need:
                raise ValueError(
                    f"{m} embedding needs at least {need} points; only N = {len(self.rows)} samples "
                    "are explored. Increase N or pick PCA."
                )
            path = (
                self.cache_dir
                / self.model_key
                / f"embed-{_key([m, k, self.seed, _key(self.rows.tolist()), _embed_version()])}.npy"
            )
            t0 = time.perf_counter()
            if path.exists():
                Z = np.load(path)
            else:
                self._info(f"computing {m} of {lname} for {len(self.rows)} points ...")
                Z = embed(self.train_data.X[self.rows], m, model=self.model, layer=k, seed=self.seed,
                          isolate=self.umap_process)
                atomic_write(path, lambda f: np.save(f, Z))
                _release_memory()  # t-SNE's / UMAP's neighbour graphs and optimiser state
            self.timings[f"embed{side}"] = time.perf_counter() - t0
            self.embeddings[side] = Z
            self._redraw_embedding(side)

    def _color(self, key):
        ds, rows, res = self.train_data, self.rows, self.result
        if key == "margin":
            return res.margin.astype(np.float32), "continuous", None
        if key == "max margin":  # seed 000 Eq. 4, with the labels after corruption
            return self.maxmargin["after"][0].astype(np.float32), "continuous", None
        if key == "class":
            return ds.y[rows], "categorical", list(ds.class_names)
        if key == "clean/corrupted":
            return np.where(ds.corrupted[rows], "corrupted", "clean"), "categorical", None
        if key == "correct/incorrect":
            return np.where(res.pred == ds.y[rows], "correct", "incorrect"), "categorical", None
        return self.groups, "categorical", None

    def _hover(self):
        ds, rows, res = self.train_data, self.rows, self.result
        y, y0 = ds.y[rows], ds.y_original[rows]
        lab = np.where(y == y0, y.astype(str), np.char.add(np.char.add(y0.astype(str), "→"), y.astype(str)))
        m = np.char.mod("%.3f", res.margin)
        return np.char.add(
            np.char.add(
                np.char.add(np.char.add("label ", lab), ", pred "),
                np.char.add(res.pred.astype(str), ", margin "),
            ),
            m,
        )

    def _redraw_embedding(self, side):
        if self.embeddings[side] is None or self.result is None:
            return
        from ..embed import variance_ratio
        from ..viz.embedding import embedding_figure

        w = self.w_embed[side]
        color, kind, names = self._color(w["color"].value)
        Z = self.embeddings[side]
        fig = embedding_figure(
            Z,
            color,
            kind=kind,
            category_names=names,
            hover=self._hover(),
            title=f"{w['method'].value.upper()} of {w['layer'].value} ({len(Z)} samples)",
            colorbar_title=w["color"].value if kind == "continuous" else "",
            highlight=self.highlighted,
            selected=self.selected,
            uirevision=f"{side}-{w['method'].value}-{w['layer'].value}",
        )
        fw = self.figs[side]
        with fw.batch_update():
            fw.data = []
            fw.add_traces(list(fig.data))
            fw.layout = fig.layout
        for tr in fw.data[:-2]:
            tr.on_click(self.on_embedding_click)
        vr = variance_ratio(Z, self.train_data.y_original[self.rows])
        self.w_ratio[
            side
        ].value = f"<small>seed 003 variance decomposition (original classes): {html.escape(str(vr))}</small>"
        self.variance[side] = vr

    def _update_marks(self):
        from ..viz.embedding import highlight_xy

        for side in range(2):
            Z = self.embeddings[side]
            if Z is None:
                continue
            fw = self.figs[side]
            hx, hy = highlight_xy(Z, self.highlighted)
            sx, sy = highlight_xy(Z, [] if self.selected is None else [self.selected])
            with fw.batch_update():
                fw.data[-2].x, fw.data[-2].y = hx, hy
                fw.data[-1].x, fw.data[-1].y = sx, sy

    # ------------------------------------------------------------------ click -> details
    def on_embedding_click(self, trace, points, state=None):
        """FigureWidget click callback: every trace gets called, only the clicked one has point indices."""
        if not points.point_inds:
            return
        self.select(int(np.asarray(trace.customdata)[points.point_inds[0]]))

    def max_margins(self, rows) -> dict:
        """Seed 000's maximum margin (Eq. 4) of training rows ``rows``: distance to, and index of, the nearest
        training sample with a different label, ``"before"`` (original inputs and labels) and ``"after"``
        corruption. Computed for all explored samples at once (one chunked distance matrix), so a click
        only looks it up."""
        from ..margins.nearest import maximum_margin

        ds = self.train_data
        out = {}
        for when, X, y in (("before", ds.X_original, ds.y_original), ("after", ds.X, ds.y)):
            d, j = maximum_margin(X[rows], y[rows], reference_X=X, reference_y=y, return_index=True)
            out[when] = (d, j)
        return out

    def _load_max_margins(self, rows):
        path = self.cache_dir / self.model_key / f"maxmargin-{_key(rows.tolist())}.npz"
        if path.exists():
            with np.load(path) as z:
                return {w: (z[f"{w}_d"], z[f"{w}_j"]) for w in ("before", "after")}
        mm = self.max_margins(rows)
        arrays = {f"{w}_{k}": v for w, (d, j) in mm.items() for k, v in (("d", d), ("j", j))}
        atomic_write(path, lambda f: np.savez(f, **arrays))
        return mm

    def nearest_other_label(self, r: int, when: str = "after") -> dict:
        """Nearest training sample with a different label to explored row ``r`` (its maximum margin),
        ``"before"`` or ``"after"`` corruption: ``{"index", "distance", "label"}``."""
        d, j = self.maxmargin[check_choice(when, "when", ("before", "after"))]
        k = int(j[r])
        y = self.train_data.y_original if when == "before" else self.train_data.y
        return {"index": k, "distance": float(d[r]), "label": int(y[k]) if k >= 0 else -1}

    def _solve_row(self, r):
        """Solve all classes for explored row ``r`` (used when its margins are not cached)."""
        res = self.compute_margins(self.rows[r : r + 1], self._settings, progress=False)
        for f in _MARGIN_FIELDS:
            arr = getattr(self.result, f)
            if arr is not None:
                arr[r] = getattr(res, f)[0]
        self.solved[r] = True

    def select(self, r: int) -> dict | None:
        """Show sample ``r`` (row of the explored set): images, margin, class pair, per-class distances,
        nearest different-label training sample before and after corruption. Returns the details dict."""
        with self._guard("details"):
            if self.result is None:
                raise ValueError("no data yet: press 'Train / load + margins' first")
            r = check_int(r, "sample", min_value=0, max_value=len(self.rows) - 1)
            t0 = time.perf_counter()
            if not self.solved[r]:
                self._solve_row(r)
            ds, res = self.train_data, self.result
            i = int(self.rows[r])
            x = ds.X[i]
            point = res.point[r].reshape(x.shape)
            diff = point - x.astype(np.float64)
            nn = {when: self.nearest_other_label(r, when) for when in ("before", "after")}
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
                "distances": res.distances[r].copy(),
                "sample": x,
                "point": point,
                "perturbation": diff,
                "perturbation_norm": float(np.linalg.norm(diff)),
                "nearest": nn,
            }
            self.selected = r
            self.details = det
            self._update_marks()
            self._draw_details(det)
            det["seconds"] = time.perf_counter() - t0
            return det
        return None

    def _image_panels(self, det):
        if det is None:
            return [
                ("sample", None, "image"),
                ("boundary point", None, "image"),
                ("perturbation", None, "diff"),
                ("nearest other label (before)", None, "image"),
                ("nearest other label (after)", None, "image"),
            ]
        ds = self.train_data
        nb, na = det["nearest"]["before"], det["nearest"]["after"]
        return [
            (f"sample #{det['index']} (label {det['label']})", det["sample"], "image"),
            (f"boundary point {det['pred']}|{det['boundary_class']}", det["point"], "image"),
            (f"perturbation ‖·‖={det['perturbation_norm']:.3f}", det["perturbation"], "diff"),
            (
                f"before: #{nb['index']} ({nb['label']}) d={nb['distance']:.2f}",
                None if nb["index"] < 0 else ds.X_original[nb["index"]],
                "image",
            ),
            (
                f"after: #{na['index']} ({na['label']}) d={na['distance']:.2f}",
                None if na["index"] < 0 else ds.X[na["index"]],
                "image",
            ),
        ]

    def _draw_details(self, det):
        from ..viz.images import bar_values, panel_arrays

        # update the existing figures in place: building new ones (make_subplots) costs ~0.3-0.8 s a click
        fw = self.fig_images
        with fw.batch_update():
            for tr, ann, (title, z, lo, hi) in zip(
                fw.data, fw.layout.annotations, panel_arrays(self._image_panels(det))
            ):
                tr.z, tr.zmin, tr.zmax = z, lo, hi
                ann.text = title
        y, colors = bar_values(det["distances"], det["pred"], det["boundary_class"])
        fb = self.fig_bars
        with fb.batch_update():
            fb.data[0].y = y
            fb.data[0].marker.color = colors
            fb.layout.title.text = f"distance to each class boundary (from class {det['pred']})"
        nb, na = det["nearest"]["before"], det["nearest"]["after"]
        lab = (
            f"{det['original_label']} → {det['label']} (label-corrupted)"
            if det["label"] != det["original_label"]
            else f"{det['label']}" + (" (input-corrupted)" if det["corrupted"] else "")
        )
        ratio = (
            det["margin"] / na["distance"] if na["distance"] and np.isfinite(na["distance"]) else float("nan")
        )
        rows = [
            ("sample", f"#{det['index']} (row {det['row']}), group <b>{html.escape(det['group'])}</b>"),
            ("label", lab),
            ("predicted", str(det["pred"])),
            ("margin", f"<b>{det['margin']:.4f}</b> to the {det['pred']}|{det['boundary_class']} boundary"),
            ("boundary check", f"|f_i − f_j| = {det['residual']:.2e}, verified: {det['converged']}"),
            (
                "max margin before",
                f"{nb['distance']:.4f} (nearest other label: #{nb['index']}, class {nb['label']})",
            ),
            (
                "max margin after",
                f"{na['distance']:.4f} (nearest other label: #{na['index']}, class {na['label']})",
            ),
            ("margin / max margin", f"{ratio:.3f}"),
        ]
        self.w_details.value = (
            "<table style='font-size:12px'>"
            + "".join(f"<tr><td style='padding-right:8px'>{k}</td><td>{v}</td></tr>" for k, v in rows)
            + "</table>"
        )

    # ------------------------------------------------------------------ histograms and range selection
    def _hist_mask(self):
        mask = np.isfinite(self.result.margin)
        if self.w_correct_only.value:
            mask &= self.result.pred == self.train_data.y[self.rows]
        return mask

    def histogram_counts(self) -> dict:
        """Samples per group in the histogram (after the correct-only filter)."""
        mask = self._hist_mask()
        names, counts = np.unique(self.groups[mask].astype(str), return_counts=True)
        return dict(zip(names.tolist(), counts.tolist()))

    def _setup_histogram(self):
        m = self.result.margin[np.isfinite(self.result.margin)]
        lo, hi = (float(m.min()), float(m.max())) if len(m) else (0.0, 1.0)
        hi = max(hi, lo + 1e-6)
        r = self.w_range
        with self._hold():
            # order matters: min may never exceed max while the bounds move
            r.max = max(hi, r.max)
            r.min = lo
            r.max = hi
            r.step = (hi - lo) / 500
            r.value = (lo, hi)
            self.w_group.options = ["all groups"] + sorted(set(self.groups.tolist()))
            self.w_group.value = "all groups"
        self._redraw_histogram()

    def _redraw_histogram(self, value_range=None):
        if self.result is None:
            return
        from ..viz.histograms import margin_histogram_figure

        mask = self._hist_mask()
        corr = self.train_data.corruption or "none"
        title = (
            f"margins by group (seed 000 names; {int(mask.sum())} samples"
            + (", correctly classified only" if self.w_correct_only.value else "")
            + f"; corruption: {corr})"
        )
        fig = margin_histogram_figure(
            np.where(mask, self.result.margin, np.nan), self.groups, title=title, value_range=value_range
        )
        fw = self.fig_hist
        with fw.batch_update():
            fw.data = []
            fw.add_traces(list(fig.data))
            fw.layout = fig.layout
        for tr in fw.data:
            tr.on_selection(self.on_histogram_selection)

    def _on_range(self, change):
        if not self._quiet and self.result is not None:
            self.select_range(*change["new"], group=self.w_group.value)

    def on_histogram_selection(self, trace, points, selector):
        """Box-select on the histogram: its x range becomes the highlighted margin range."""
        xr = getattr(selector, "xrange", None)
        if not xr:
            return
        self.select_range(float(min(xr)), float(max(xr)), group=self.w_group.value)

    def select_range(self, lo: float, hi: float, group: str | None = None) -> np.ndarray:
        """Highlight explored samples with margin in [lo, hi] (and in ``group``, a seed-000 name or
        ``None``/``"all groups"``) in both embeddings. Returns their rows."""
        out = np.zeros(0, dtype=np.int64)
        with self._guard("range selection"):
            if self.result is None:
                raise ValueError("no data yet: press 'Train / load + margins' first")
            lo, hi = float(lo), float(hi)
            if lo > hi:
                raise ValueError(f"range must have lo <= hi, got ({lo:g}, {hi:g})")
            mask = self._hist_mask() & (self.result.margin >= lo) & (self.result.margin <= hi)
            if group not in (None, "all groups"):
                if group not in set(self.groups.tolist()):
                    raise ValueError(
                        f"group must be one of {sorted(set(self.groups.tolist()))}, got {group!r}"
                    )
                mask &= self.groups == group
            out = np.flatnonzero(mask)
            self.highlighted = out
            self._update_marks()
            fw = self.fig_hist
            fw.layout.shapes = [
                dict(
                    type="rect",
                    xref="x",
                    yref="paper",
                    x0=lo,
                    x1=hi,
                    y0=0,
                    y1=1,
                    fillcolor="gold",
                    opacity=0.25,
                    line_width=0,
                )
            ]
            self._info(
                f"{len(out)} samples highlighted (margin in [{lo:.3f}, {hi:.3f}]"
                + (f", {group}" if group not in (None, "all groups") else "")
                + ")"
            )
        return out

    def clear_highlight(self):
        self.highlighted = np.zeros(0, dtype=np.int64)
        self._update_marks()
        self.fig_hist.layout.shapes = []


def check_float_open(v):
    """A validation fraction in [0, 1)."""
    v = check_fraction(v, "val_fraction")
    if v >= 1:
        raise ValueError(f"val_fraction must be < 1, got {v:g}")
    return v
