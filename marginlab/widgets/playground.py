"""``Playground``: a live 2-D margin playground (ipywidgets + plotly FigureWidget).

Train a small MLP on a toy 2-D dataset and watch class regions, the decision boundary, loss/accuracy and
margins evolve. Click a sample to see its exact nearest boundary point (the batched solver), click empty
space to add a point of the chosen class. Training is driven by an ``ipywidgets.Play`` tick: each tick runs
``steps per tick`` minibatch steps and sends one ``batch_update`` per figure, so the kernel stays free for
clicks between ticks. Everything the tick does is in :meth:`Playground.tick` (tests call it directly).

The app only wires controls to the core (``data``, ``corruption``, ``models``, ``train``, ``margins``) and
to the figure builders in :mod:`marginlab.viz.playground`; errors are shown inside the app, never raised.
"""

from __future__ import annotations

import functools
import html
import logging
import time
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Playground", "PlaygroundSettings", "SettingsError", "LOSS_CHOICES", "OPTIMIZER_CHOICES"]

log = logging.getLogger(__name__)

# the names the issue asks for; the registries may add more, and may not have all of these yet
LOSS_CHOICES = (
    ("cross-entropy", "cross_entropy"),
    ("hinge", "hinge"),
    ("large-margin", "large_margin"),
    ("ODN", "odn"),
    ("rescaled square", "rescaled_square"),
)
OPTIMIZER_CHOICES = (("SGD", "sgd"), ("Adam", "adam"), ("Nero", "nero"))
ESTIMATES = ("linearized", "deepfool")
MAX_SAMPLES = 2000


class SettingsError(ValueError):
    """An invalid playground setting; its message is shown to the user as is."""


@dataclass
class PlaygroundSettings:
    """Everything that defines a playground run. Percentages are in [0, 100]."""

    dataset: str = "moons"
    n_samples: int = 300
    noise: float = 0.15
    test_percent: int = 30
    n_classes: int = 3
    label_corruption: float = 0.0
    input_corruption: float = 0.0
    hidden: str = "16, 16"
    activation: str = "relu"
    loss: str = "cross_entropy"
    optimizer: str = "adam"
    lr: float = 0.01
    batch_size: int = 32
    seed: int = 0
    steps_per_tick: int = 10
    margin_every: int = 5

    def hidden_widths(self) -> tuple[int, ...]:
        """Parse ``hidden`` ("16, 16"; empty for no hidden layer)."""
        text = self.hidden if isinstance(self.hidden, str) else ", ".join(map(str, self.hidden))
        parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p]
        try:
            widths = tuple(int(p) for p in parts)
        except ValueError:
            raise SettingsError(
                f"Hidden layers: write the widths separated by commas, e.g. '16, 16' (got {text!r})."
            ) from None
        if any(w <= 0 for w in widths):
            raise SettingsError(
                f"Hidden layers: every layer needs at least 1 unit; a 0-width layer cannot "
                f"pass anything on (got {text!r})."
            )
        if len(widths) > 6 or any(w > 512 for w in widths):
            raise SettingsError(
                f"Hidden layers: at most 6 layers of at most 512 units keep the playground "
                f"live (got {text!r})."
            )
        return widths

    def validate(self) -> PlaygroundSettings:
        """Raise :class:`SettingsError` with a user-facing message for the first invalid setting."""
        from marginlab.data import TOY_DATASETS
        from marginlab.models import ACTIVATIONS

        def number(name, label, lo, hi, integer=False):
            v = getattr(self, name)
            ok_type = isinstance(v, (int, np.integer)) if integer else isinstance(v, (int, float, np.number))
            if isinstance(v, bool) or not ok_type or not np.isfinite(v):
                kind = "a whole number" if integer else "a number"
                raise SettingsError(f"{label} must be {kind} between {lo:g} and {hi:g} (got {v!r}).")
            if not lo <= v <= hi:
                raise SettingsError(f"{label} must be between {lo:g} and {hi:g} (got {v:g}).")

        if self.dataset not in TOY_DATASETS:
            raise SettingsError(f"Dataset must be one of {', '.join(TOY_DATASETS)} (got {self.dataset!r}).")
        number("n_samples", "Number of samples", 10, MAX_SAMPLES, integer=True)
        number("noise", "Noise", 0, 2)
        number("test_percent", "Test share (%)", 0, 90, integer=True)
        number("n_classes", "Number of classes", 2, 6, integer=True)
        number("label_corruption", "Label corruption (%)", 0, 100)
        number("input_corruption", "Input corruption (%)", 0, 100)
        self.hidden_widths()
        if self.activation not in ACTIVATIONS:
            raise SettingsError(
                f"Activation must be one of {', '.join(ACTIVATIONS)} (got {self.activation!r})."
            )
        lr = self.lr
        if (
            isinstance(lr, bool)
            or not isinstance(lr, (int, float, np.number))
            or not np.isfinite(lr)
            or lr <= 0
        ):
            raise SettingsError(f"Learning rate must be a number > 0 (got {lr!r}).")
        number("lr", "Learning rate", 0, 10)
        number("batch_size", "Batch size", 1, 4096, integer=True)
        number("seed", "Seed", 0, 2**31 - 1, integer=True)
        number("steps_per_tick", "Steps per tick", 1, 500, integer=True)
        number("margin_every", "Margin refresh (ticks)", 1, 1000, integer=True)
        n_train = self.n_samples - round(self.n_samples * self.test_percent / 100)
        if n_train < 2:
            raise SettingsError(
                f"Only {n_train} training sample(s) left: lower the test share or add samples."
            )
        return self

    @property
    def classes(self) -> int:
        return self.n_classes if self.dataset in ("blobs", "spirals") else 2


def _available(registry_name: str) -> dict:
    from marginlab import train

    return getattr(train, registry_name)


def _choices(spec, registry) -> list[tuple[str, str]]:
    """Dropdown options: the issue's names first, then any other registry entries (aliases left out)."""
    out = [(label if key in registry else f"{label} (not available yet)", key) for label, key in spec]
    seen = {registry[key] for _, key in spec if key in registry}
    for key, factory in registry.items():
        if key not in {k for _, k in spec} and factory not in seen:
            seen.add(factory)
            out.append((key, key))
    return out


def _guarded(fn):
    """Run a callback; show any error inside the app instead of raising (a traceback never reaches the
    user, and the app stays usable)."""

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        from ..device import torch_threads  # torch is imported when the app is used, not at import

        try:
            with torch_threads(1):  # tiny tensors: intra-op threads only add synchronisation
                return fn(self, *args, **kwargs)
        except (SettingsError, ValueError, TypeError) as exc:
            self._fail(str(exc))
        except Exception as exc:  # noqa: BLE001 - an app callback must never raise into the frontend
            log.exception("playground callback %s failed", fn.__name__)
            self._fail(
                f"Something went wrong ({type(exc).__name__}: {exc}). Training is paused; change a "
                f"setting or press Reset."
            )
        finally:
            self._sync_views()
        return None

    return wrapper


def combine_corruption(train, label_percent: float, input_percent: float, seed: int):
    """``train`` with ``label_percent`` % of labels and ``input_percent`` % of inputs corrupted
    (independently drawn subsets, which may overlap). ``meta["label_corrupted"]`` and
    ``meta["input_corrupted"]`` keep the two masks; ``corrupted`` is their union."""
    from marginlab.corruption import corrupt

    lab = corrupt(train, "label", label_percent / 100.0, seed=seed)
    inp = corrupt(train, "gaussian", input_percent / 100.0, seed=seed + 1)
    lab_mask, inp_mask = lab.corrupted.copy(), inp.corrupted.copy()
    kinds = [k for k, m in (("label", lab_mask), ("gaussian", inp_mask)) if m.any()]
    return train.replace(
        X=inp.X,
        y=lab.y,
        corrupted=lab_mask | inp_mask,
        y_original=train.y.copy(),
        X_original=train.X,
        corruption="+".join(kinds) or None,
        meta={**train.meta, "label_corrupted": lab_mask, "input_corrupted": inp_mask},
    )


def corruption_kind(ds) -> np.ndarray:
    """Per sample: 0 clean, 1 label-corrupted, 2 input-corrupted, 3 both."""
    lab = ds.meta.get("label_corrupted")
    inp = ds.meta.get("input_corrupted")
    n = len(ds)
    lab = np.zeros(n, bool) if lab is None else np.asarray(lab, bool)
    inp = np.zeros(n, bool) if inp is None else np.asarray(inp, bool)
    if ds.corrupted.any() and not (lab.any() or inp.any()):
        (inp if ds.corruption == "gaussian" else lab)[:] = ds.corrupted
    return lab.astype(np.int8) + 2 * inp.astype(np.int8)


def append_point(ds, x, y, cls: int):
    """``ds`` with one clean sample (x, y) of class ``cls`` appended (row index -1 marks it as added)."""
    X = np.concatenate([ds.X, np.array([[x, y]], np.float32)])
    lab = np.concatenate([ds.y, [cls]])
    meta = dict(ds.meta)
    for key in ("label_corrupted", "input_corrupted"):
        if key in meta:
            meta[key] = np.concatenate([meta[key], [False]])
    return ds.replace(
        X=X,
        y=lab,
        corrupted=np.concatenate([ds.corrupted, [False]]),
        y_original=np.concatenate([ds.y_original, [cls]]),
        X_original=np.concatenate([ds.X_original, X[-1:]]),
        index=np.concatenate([ds.index, [-1]]),
        meta=meta,
    )


class Playground:
    """The live 2-D margin playground.

    ``Playground(**settings)`` builds the app (see :class:`PlaygroundSettings` for the settings); display
    it as the last expression of a cell. Public steps: :meth:`tick` (what the Play timer calls),
    :meth:`reset`, :meth:`set`, :meth:`select`, :meth:`on_point_click`, :meth:`on_background_click`,
    :meth:`add_point`, :meth:`refresh_margins`. ``error`` holds the message of the last failure (None when
    the last action succeeded); ``message`` is the HTML widget showing it.
    """

    def __init__(
        self,
        settings: PlaygroundSettings | None = None,
        *,
        device="auto",
        grid_resolution: int = 60,
        interval_ms: int = 150,
        live_max_iter: int = 20,
        **overrides,
    ):
        import ipywidgets as W

        self.device_request = device
        self.grid_resolution = int(grid_resolution)
        self.error: str | None = None
        self.trainer = None
        self.train = self.test = None
        self.grid = None
        self.margins = None  # MarginResult over train + test (train rows first)
        self.margins_exact = False  # False: solved with live_max_iter while playing
        self.live_max_iter = int(live_max_iter)
        self._version = 0  # bumps whenever weights or data change
        self._margins_version = -1
        self.margin_log = {"epoch": [], "train min": [], "train mean": [], "test mean": []}
        self.selection: dict | None = None
        self.tick_count = 0
        self.last_tick_seconds = 0.0
        self._hold = False
        self._blocked = True
        base = settings or PlaygroundSettings()
        base = PlaygroundSettings(**{**asdict(base), **overrides})

        from marginlab.data import TOY_DATASETS
        from marginlab.models import ACTIVATIONS

        def lay(w="100%"):
            return W.Layout(width=w)

        style = {"description_width": "112px"}
        c = {}
        c["dataset"] = W.Dropdown(
            options=list(TOY_DATASETS), description="dataset", style=style, layout=lay()
        )
        c["n_samples"] = W.IntText(description="samples", style=style, layout=lay(), continuous_update=False)
        c["noise"] = W.FloatSlider(
            min=0, max=0.5, step=0.01, description="noise", style=style, layout=lay(), continuous_update=False
        )
        c["test_percent"] = W.IntSlider(
            min=0, max=90, step=5, description="test %", style=style, layout=lay(), continuous_update=False
        )
        c["n_classes"] = W.IntSlider(
            min=2, max=6, description="classes", style=style, layout=lay(), continuous_update=False
        )
        c["label_corruption"] = W.FloatText(
            description="label corrupt. %", style=style, layout=lay(), continuous_update=False
        )
        c["input_corruption"] = W.FloatText(
            description="input corrupt. %", style=style, layout=lay(), continuous_update=False
        )
        c["hidden"] = W.Text(
            description="hidden widths",
            placeholder="e.g. 16, 16",
            style=style,
            layout=lay(),
            continuous_update=False,
        )
        c["activation"] = W.Dropdown(
            options=list(ACTIVATIONS), description="activation", style=style, layout=lay()
        )
        c["loss"] = W.Dropdown(
            options=_choices(LOSS_CHOICES, _available("LOSSES")),
            description="loss",
            style=style,
            layout=lay(),
        )
        c["optimizer"] = W.Dropdown(
            options=_choices(OPTIMIZER_CHOICES, _available("OPTIMIZERS")),
            description="optimizer",
            style=style,
            layout=lay(),
        )
        c["lr"] = W.FloatText(description="learning rate", style=style, layout=lay(), continuous_update=False)
        c["batch_size"] = W.IntText(
            description="batch size", style=style, layout=lay(), continuous_update=False
        )
        c["seed"] = W.IntText(description="seed", style=style, layout=lay(), continuous_update=False)
        c["steps_per_tick"] = W.IntSlider(
            min=1, max=100, description="steps / tick", style=style, layout=lay(), continuous_update=False
        )
        c["margin_every"] = W.IntSlider(
            min=1,
            max=20,
            description="margins every",
            style=style,
            layout=lay(),
            continuous_update=False,
            tooltip="recompute all margins every N ticks",
        )
        self.controls = c
        self._set_widgets(base)
        for name, w in c.items():
            w.observe(functools.partial(self._on_control, name), names="value")

        self.play = W.Play(
            value=0,
            min=0,
            max=10**9,
            step=1,
            interval=int(interval_ms),
            show_repeat=False,
            description="play",
        )
        self.play.observe(self._on_play, names="value")
        self.play.observe(self._on_playing, names="playing")
        self.step_button = W.Button(description="step", icon="step-forward", layout=W.Layout(width="80px"))
        self.step_button.on_click(lambda _: self.tick())
        self.reset_button = W.Button(description="reset", icon="refresh", layout=W.Layout(width="80px"))
        self.reset_button.on_click(lambda _: self.reset())
        self.status = W.HTML()
        self.message = W.HTML(layout=W.Layout(min_height="24px"))
        self.info = W.HTML(layout=W.Layout(width="500px", min_height="44px"))
        self.add_class = W.ToggleButtons(
            options=[("0", 0), ("1", 1)],
            description="click adds",
            style={"button_width": "34px", "description_width": "70px"},
        )
        self.show_estimates = {
            name: W.Checkbox(value=False, description=label, indent=False, layout=W.Layout(width="auto"))
            for name, label in (("linearized", "linearized"), ("deepfool", "DeepFool"))
        }
        self.show_all = W.Checkbox(
            value=False, description="all training segments", indent=False, layout=W.Layout(width="auto")
        )
        for w in self.show_estimates.values():
            w.observe(lambda _ch: self._refresh_selection(), names="value")
        self.show_all.observe(lambda _ch: self._draw_all_segments(), names="value")

        self._build_figures(W)
        self.widget = self._layout(W)
        self.reset()

    # -- construction ---------------------------------------------------------------------------------
    def _set_widgets(self, s: PlaygroundSettings):
        self._hold = True
        try:
            for name, w in self.controls.items():
                value = getattr(s, name)
                if isinstance(w.options if hasattr(w, "options") else None, (list, tuple)):
                    keys = [o[1] if isinstance(o, tuple) else o for o in w.options]
                    if value not in keys:
                        raise SettingsError(
                            f"{name} must be one of {', '.join(map(str, keys))} (got {value!r})."
                        )
                w.value = (
                    ", ".join(map(str, value)) if name == "hidden" and not isinstance(value, str) else value
                )
        finally:
            self._hold = False

    def _build_figures(self, W):
        import plotly.graph_objects as go

        from marginlab.viz import histograms as vh
        from marginlab.viz import playground as vp
        from marginlab.viz.common import make_grid

        grid = make_grid(np.array([[-1, -1], [1, 1]]), resolution=self.grid_resolution)
        logits = np.zeros((grid.shape[0] * grid.shape[1], 2))
        self.surface = go.FigureWidget(vp.decision_surface(grid, logits, n_classes=2))
        self._trace = {name: i for i, name in enumerate(vp.SURFACE_TRACES)}
        for name in ("train", "train_corrupted", "test"):
            self.surface.data[self._trace[name]].on_click(self.on_point_click)
        self.surface.data[self._trace["regions"]].on_click(self._on_regions_click)
        self.curves = go.FigureWidget(vp.training_curves({}))
        self.histogram = go.FigureWidget(
            vh.margin_histogram(self._hist_groups(np.zeros(0), np.zeros(0, bool), np.zeros(0)))
        )
        self.margin_plot = go.FigureWidget(
            vp.margin_curves([], {k: [] for k in self.margin_log if k != "epoch"})
        )
        for f in (self.surface, self.curves, self.histogram, self.margin_plot):
            f.add_class("marginlab-playground-figure")

    def _layout(self, W):
        c = self.controls

        def section(title, *ws):
            return W.VBox([W.HTML(f"<b>{title}</b>"), *ws], layout=W.Layout(margin="0 0 6px 0"))

        left = W.VBox(
            [
                section(
                    "Data",
                    c["dataset"],
                    c["n_samples"],
                    c["noise"],
                    c["test_percent"],
                    c["n_classes"],
                    c["label_corruption"],
                    c["input_corruption"],
                ),
                section("Model", c["hidden"], c["activation"]),
                section(
                    "Training",
                    c["loss"],
                    c["optimizer"],
                    c["lr"],
                    c["batch_size"],
                    c["seed"],
                    c["steps_per_tick"],
                    c["margin_every"],
                ),
            ],
            layout=W.Layout(width="290px"),
        )
        legend = W.HTML(
            "<span style='font-size:11px'>○ clean · ✕ label-corrupted · ◇ input-corrupted · "
            "faded: test · click a sample for its nearest boundary point, click empty space to add a "
            "point</span>"
        )
        middle = W.VBox(
            [
                self.surface,
                legend,
                self.add_class,
                W.HBox([W.HTML("overlay:&nbsp;"), *self.show_estimates.values(), self.show_all]),
                self.info,
            ]
        )
        right = W.VBox([self.curves, self.histogram, self.margin_plot])
        top = W.HBox(
            [self.play, self.step_button, self.reset_button, self.status],
            layout=W.Layout(align_items="center"),
        )
        return W.VBox([top, self.message, W.HBox([left, middle, right])])

    def _sync_views(self):
        # Updates sent before any view exists are lost (Voila renders only after all cells ran), so until
        # an event from a live view arrives, keep the state a new view renders from in step as well.
        if not getattr(self, "_frontend_seen", False) and getattr(self, "widget", None) is not None:
            from ._display import sync_figures

            sync_figures(self.widget)

    def _repr_mimebundle_(self, **kwargs):
        from ._display import sync_figures

        sync_figures(self.widget)
        return self.widget._repr_mimebundle_(**kwargs)

    def _ipython_display_(self):
        from ._display import display_app

        display_app(self.widget)

    # -- settings -------------------------------------------------------------------------------------
    @property
    def settings(self) -> PlaygroundSettings:
        """The settings as the controls show them now (not validated)."""
        return PlaygroundSettings(**{k: w.value for k, w in self.controls.items()})

    @_guarded
    def set(self, **settings):
        """Change several settings at once (one restart); the learning rate and batch size apply live."""
        unknown = set(settings) - set(self.controls)
        if unknown:
            raise SettingsError(f"Unknown setting(s): {', '.join(sorted(unknown))}.")
        s = PlaygroundSettings(**{**asdict(self.settings), **settings})
        self._set_widgets(s)
        if (
            set(settings) <= {"lr", "batch_size", "steps_per_tick", "margin_every"}
            and self.trainer is not None
        ):
            self._apply_live()
        else:
            self.reset()

    def _on_control(self, name, change):
        if self._hold:
            return
        if name in ("lr", "batch_size", "steps_per_tick", "margin_every") and self.trainer is not None:
            self._apply_live()
        else:
            self.reset()

    @_guarded
    def _apply_live(self):
        self._blocked = True  # until the live settings validate
        s = self.settings.validate()
        for g in self.trainer.optimizer.param_groups:
            g["lr"] = float(s.lr)
        self.trainer.batch_size = int(s.batch_size)
        self._blocked = False
        self._clear_error()

    def _fail(self, text: str):
        self.error = text
        self.play.playing = False
        self.message.value = (
            f"<div style='color:#a40000;background:#fff0f0;border:1px solid #e0b4b4;"
            f"padding:4px 8px;border-radius:3px'>⚠ {html.escape(text)}</div>"
        )

    def _note(self, text: str):
        self.message.value = f"<div style='color:#444;padding:4px 8px'>{html.escape(text)}</div>"

    def _clear_error(self):
        self.error = None
        self.message.value = ""

    # -- reset / build ----------------------------------------------------------------------------------
    @_guarded
    def reset(self):
        """Rebuild data, model and trainer from the controls; invalid settings leave the last run in place
        and show why."""
        self._blocked = True  # ticks do nothing until a run is built from valid settings
        s = self.settings.validate()
        from marginlab import train as mtrain
        from marginlab.data import load_toy
        from marginlab.models import MLP
        from marginlab.viz.common import make_grid

        for key, registry, what in (
            (s.loss, mtrain.LOSSES, "Loss"),
            (s.optimizer, mtrain.OPTIMIZERS, "Optimizer"),
        ):
            if key not in registry:
                have = ", ".join(o[1] for o in self.controls[what.lower()].options if o[1] in registry)
                raise SettingsError(
                    f"{what} {key!r} is not available in this marginlab installation yet "
                    f"(available: {have}). Choose another one."
                )
        self.play.playing = False
        K = s.classes
        train, test = load_toy(
            s.dataset,
            s.n_samples,
            noise=s.noise,
            test_size=s.test_percent / 100,
            n_classes=K if s.dataset in ("blobs", "spirals") else None,
            seed=s.seed,
        )
        train = combine_corruption(train, s.label_corruption, s.input_corruption, s.seed)
        model = MLP(2, s.hidden_widths(), K, activation=s.activation, seed=s.seed)
        trainer = mtrain.Trainer(
            model,
            train,
            val=test if len(test) else None,
            loss=s.loss,
            optimizer=s.optimizer,
            lr=float(s.lr),
            batch_size=int(s.batch_size),
            seed=s.seed,
            device=self.device_request,
        )
        # commit only once everything is built, so a failure above keeps the previous run usable
        self.run_settings = s
        self.n_classes = K
        self.train, self.test, self.trainer, self.model = train, test, trainer, trainer.model
        self.grid = make_grid(np.concatenate([train.X, test.X]), resolution=self.grid_resolution)
        import torch

        self._grid_t = torch.as_tensor(self.grid.points, device=trainer.device)
        self.selection = None
        self.margins = None
        self._version += 1
        self.margin_log = {k: [] for k in self.margin_log}
        self.tick_count = 0
        self.add_class.options = [(str(k), k) for k in range(K)]
        self.controls["n_classes"].disabled = s.dataset not in ("blobs", "spirals")
        self._blocked = False
        self._clear_error()
        self._draw_full()
        self.refresh_margins()
        self.info.value = "<i>Click a sample to see its nearest boundary point.</i>"

    # -- drawing --------------------------------------------------------------------------------------
    def _grid_logits(self) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.model(self._grid_t).double().cpu().numpy()

    def _draw_full(self):
        from marginlab.viz import playground as vp

        fig = vp.decision_surface(
            self.grid,
            self._grid_logits(),
            n_classes=self.n_classes,
            train_X=self.train.X,
            train_y=self.train.y,
            train_kind=corruption_kind(self.train),
            test_X=self.test.X,
            test_y=self.test.y,
        )
        with self.surface.batch_update():
            for i, tr in enumerate(fig.data):
                props = tr.to_plotly_json()
                props.pop("type", None)
                self.surface.data[i].update(props, overwrite=True)
            layout = fig.layout.to_plotly_json()
            layout.pop("template", None)  # unchanged, and large
            self.surface.layout.update(layout)
        self._draw_curves()
        self._draw_status()

    def _draw_points(self):
        from marginlab.viz import playground as vp

        kind = corruption_kind(self.train)
        clean = kind == 0
        rows = np.arange(len(self.train))
        K = self.n_classes
        with self.surface.batch_update():
            self.surface.data[self._trace["train"]].update(
                vp.points_props(
                    self.train.X[clean], self.train.y[clean], K, rows=rows[clean], hover_prefix="train "
                )
            )
            self.surface.data[self._trace["train_corrupted"]].update(
                vp.points_props(
                    self.train.X[~clean],
                    self.train.y[~clean],
                    K,
                    rows=rows[~clean],
                    kind=kind[~clean],
                    hover_prefix="train (corrupted) ",
                )
            )

    def _draw_curves(self):
        from marginlab.viz import playground as vp

        with self.curves.batch_update():
            for tr, props in zip(self.curves.data, vp.curves_props(self.trainer.history)):
                tr.update(props)

    def _draw_status(self):
        t = self.trainer
        h = t.history
        acc = f" · train acc {h.acc[-1]:.3f}" if h.acc else ""
        vacc = f" · test acc {h.val_acc[-1]:.3f}" if h.val_acc else ""
        loss = f" · loss {h.loss[-1]:.4f}" if h.loss else ""
        self.status.value = (
            f"&nbsp;<b>epoch {t.epoch}</b> · step {t.global_step}{loss}{acc}{vacc}"
            f" · <span style='color:#777'>{t.device.type}</span>"
        )

    # -- the Play tick --------------------------------------------------------------------------------
    def _on_play(self, change):
        self._frontend_seen = True
        if self.play.playing:
            self.tick()

    @_guarded
    def tick(self):
        """One Play tick: ``steps per tick`` training steps, then one ``batch_update`` of the surface and the
        curves; every ``margins every`` ticks also the margin panel and the selected sample."""
        if self.trainer is None or self._blocked:
            return
        t0 = time.perf_counter()
        self.trainer.step(max(1, int(self.controls["steps_per_tick"].value)))
        self._version += 1
        h = self.trainer.history
        if h.loss and not np.isfinite(h.loss[-1]):
            self._blocked = True
            raise SettingsError(
                "Training diverged (the loss is not finite): lower the learning rate and press Reset."
            )
        logits = self._grid_logits()
        from marginlab.viz import playground as vp

        regions = vp.regions_props(self.grid, logits, self.n_classes)
        boundary = vp.boundary_props(self.grid, logits)
        # once training settles, regions and boundary stop moving (by more than a pixel): send nothing then
        z_same = np.array_equal(regions["z"], self.surface.data[self._trace["regions"]].z)
        old = self.surface.data[self._trace["boundary"]]
        tol = 2e-3 * (self.grid.x_range[1] - self.grid.x_range[0])
        b_same = len(old.x) == len(boundary["x"]) and bool(
            np.nanmax(np.abs(np.asarray(old.x, float) - boundary["x"]), initial=0) < tol
            and np.nanmax(np.abs(np.asarray(old.y, float) - boundary["y"]), initial=0) < tol
        )
        if not (z_same and b_same):
            with self.surface.batch_update():
                if not z_same:
                    self.surface.data[self._trace["regions"]].update(regions)
                self.surface.data[self._trace["boundary"]].update(boundary)
        self._draw_curves()
        self._draw_status()
        self.tick_count += 1
        if self.tick_count % max(int(self.controls["margin_every"].value), 1) == 0:
            # while playing, a bounded solve keeps the tick short; pausing re-solves exactly
            self.refresh_margins(exact=not self.play.playing)
        self.last_tick_seconds = time.perf_counter() - t0

    # -- margins --------------------------------------------------------------------------------------
    def _all_xy(self):
        X = np.concatenate([self.train.X, self.test.X])
        y = np.concatenate([self.train.y, self.test.y])
        return X, y

    def _on_playing(self, change):
        if (
            not change["new"]
            and self.trainer is not None
            and not self._blocked
            and not (self.margins_exact and self._margins_version == self._version)
        ):
            self.refresh_margins()  # paused: exact margins at the current weights (clicks reuse them)

    @_guarded
    def refresh_margins(self, exact: bool = True):
        """Solve every train and test sample's margin (batched solver) and redraw the margin panel, the
        selected sample and, if shown, every training segment. ``exact=False`` bounds the solver's
        iterations by ``live_max_iter`` (its points still verify, but may not be the nearest ones)."""
        from marginlab.margins import compute_margins

        X, y = self._all_xy()
        opts = {} if exact else {"max_iter": self.live_max_iter}
        res = compute_margins(self.model, X, method="batched", y=y, signed=True, **opts)
        self.margins, self.margins_exact, self._margins_version = res, exact, self._version
        n = len(self.train)
        m = res.margin
        mt, ms = m[:n], m[n:]
        ep = self.trainer.global_step / max(self.trainer.steps_per_epoch, 1)
        self.margin_log["epoch"].append(ep)

        def stat(f, v):
            v = v[np.isfinite(v)]
            return float(f(v)) if v.size else np.nan

        self.margin_log["train min"].append(stat(np.min, mt))
        self.margin_log["train mean"].append(stat(np.mean, mt))
        self.margin_log["test mean"].append(stat(np.mean, ms))
        self._draw_margin_panel()
        self._draw_all_segments()
        if self.selection is not None:
            self._refresh_selection(from_batch=True)

    def _extend_margins(self):
        """Solve only the point just added and insert it after the training rows: the weights did not
        change, so every other margin is still valid (a full re-solve would make a click cost seconds)."""
        from marginlab.margins import MarginResult, compute_margins

        if self.margins is None:
            self.refresh_margins()
            return
        n_old = len(self.train) - 1
        opts = {} if self.margins_exact else {"max_iter": self.live_max_iter}
        new = compute_margins(
            self.model, self.train.X[-1:], method="batched", y=self.train.y[-1:], signed=True, **opts
        )
        m = self.margins
        self.margins = MarginResult.concat(
            [m.subset(np.arange(n_old)), new, m.subset(np.arange(n_old, len(m)))]
        )
        self._draw_margin_panel(curves=False)
        self._draw_all_segments()

    def _hist_groups(self, m_train, corrupted, m_test) -> dict:
        return {"train clean": m_train[~corrupted], "train corrupted": m_train[corrupted], "test": m_test}

    @property
    def histogram_groups(self) -> dict:
        """The margins shown in the histogram, by group (signed: misclassified samples are negative)."""
        n = len(self.train)
        return self._hist_groups(self.margins.margin[:n], self.train.corrupted, self.margins.margin[n:])

    def _draw_margin_panel(self, curves: bool = True):
        from marginlab.viz import histograms as vh
        from marginlab.viz import playground as vp

        with self.histogram.batch_update():
            for tr, props in zip(self.histogram.data, vh.histogram_props(self.histogram_groups)):
                tr.update(props)
        if not curves:
            return
        curves = {k: v for k, v in self.margin_log.items() if k != "epoch"}
        with self.margin_plot.batch_update():
            for tr, props in zip(
                self.margin_plot.data, vp.margin_curves_props(self.margin_log["epoch"], curves)
            ):
                tr.update(props)

    def _draw_all_segments(self):
        from marginlab.viz import playground as vp

        tr = self.surface.data[self._trace["all_segments"]]
        if self.show_all.value and self.margins is not None:
            n = len(self.train)
            props = vp.segment_props(self.train.X, self.margins.point[:n], dtype=np.float32)
        else:
            props = {"x": np.zeros(0, np.float32), "y": np.zeros(0, np.float32)}
        tr.update(props)

    # -- clicks ---------------------------------------------------------------------------------------
    def on_point_click(self, trace, points, state=None):
        """Plotly click callback of the sample traces: select the clicked sample."""
        if not points.point_inds:
            return  # plotly calls every trace's callback; only the clicked one gets indices
        self._frontend_seen = True
        split = "test" if trace.name == "test" else "train"
        row = int(np.asarray(trace.customdata)[points.point_inds[0]])
        self.select(split, row)

    def _on_regions_click(self, trace, points, state=None):
        if not points.point_inds:
            return
        self._frontend_seen = True
        if points.xs and points.ys:
            x, y = float(points.xs[0]), float(points.ys[0])
        else:
            i, j = points.point_inds[0]
            x, y = float(self.grid.xs[j]), float(self.grid.ys[i])
        self.on_background_click(x, y)

    @_guarded
    def on_background_click(self, x: float, y: float):
        """A click on empty space: add a point of the chosen class there (training continues with it)."""
        self.add_point(x, y, self.add_class.value)

    @_guarded
    def add_point(self, x: float, y: float, cls: int | None = None):
        """Add a clean training sample of class ``cls`` (default: the chosen one) at (x, y)."""
        cls = self.add_class.value if cls is None else int(cls)
        if not 0 <= cls < self.n_classes:
            raise SettingsError(f"Class must be between 0 and {self.n_classes - 1} (got {cls}).")
        if not (np.isfinite(x) and np.isfinite(y)):
            raise SettingsError("The clicked position is not a finite point.")
        if len(self.train) >= 2 * MAX_SAMPLES:
            raise SettingsError(f"At most {2 * MAX_SAMPLES} training samples; press Reset to start over.")
        self.train = append_point(self.train, x, y, cls)
        self.trainer.set_train_data(self.train)
        self._draw_points()
        self._extend_margins()
        self._note(f"Added a class-{cls} point at ({x:.2f}, {y:.2f}); {len(self.train)} training samples.")

    @_guarded
    def select(self, split: str, row: int):
        """Select sample ``row`` of ``split`` ("train" or "test"): solve its nearest boundary point and draw
        it with the segment from the sample."""
        ds = self.train if split == "train" else self.test
        if split not in ("train", "test") or not 0 <= int(row) < len(ds):
            raise SettingsError(f"No {split} sample #{row}.")
        self.selection = {"split": split, "row": int(row)}
        self._refresh_selection()

    def _refresh_selection(self, from_batch: bool = False):
        try:
            self._solve_selection(from_batch)
        except Exception as exc:  # noqa: BLE001 - shown in the app like every callback error
            self._fail(f"Could not solve the selected sample's margin ({type(exc).__name__}: {exc}).")

    def _solve_selection(self, from_batch: bool):
        from marginlab.margins import METHODS, compute_margins

        sel = self.selection
        if sel is None or self.trainer is None:
            return
        ds = self.train if sel["split"] == "train" else self.test
        x = ds.X[sel["row"]].astype(np.float64)
        label = int(ds.y[sel["row"]])
        current = self.margins is not None and self._margins_version == self._version
        if current and (from_batch or self.margins_exact):
            # the margins at the current weights are already solved: a click costs no solve
            k = sel["row"] + (0 if sel["split"] == "train" else len(self.train))
            res = self.margins.subset([k])
            exact = self.margins_exact
        else:
            # while playing, a bounded solve keeps the kernel responsive (its point is a verified boundary
            # point, maybe not the nearest); pausing re-solves exactly
            exact = not self.play.playing
            opts = {} if exact else {"max_iter": self.live_max_iter}
            res = compute_margins(self.model, ds.X[sel["row"]][None], method="batched", y=[label], **opts)
        estimates, notes = {}, []
        for name, box in self.show_estimates.items():
            if not box.value:
                continue
            if name not in METHODS:
                notes.append(f"{name}: not available in this version")
                continue
            try:
                est = compute_margins(self.model, ds.X[sel["row"]][None], method=name, y=[label])
            except ImportError:
                notes.append(f"{name}: not available yet")
                continue
            estimates[name] = est.point[0]
            sel[name] = float(est.margin[0])
        margin = float(abs(res.margin[0]))
        point = res.point[0]
        sel["exact"] = exact
        sel.update(
            x=x,
            label=label,
            pred=int(res.pred[0]),
            margin=margin,
            point=point,
            boundary_class=int(res.boundary_class[0]),
            residual=float(res.residual[0]),
            converged=bool(res.converged[0]),
            estimates=estimates,
        )
        self._draw_selection()
        self._show_selection_info(notes)

    def _draw_selection(self):
        from marginlab.viz import playground as vp

        sel = self.selection
        x = sel["x"][None]
        p = sel["point"][None]
        empty = {"x": np.zeros(0), "y": np.zeros(0)}
        with self.surface.batch_update():
            self.surface.data[self._trace["selected"]].update(vp.marker_props(x))
            self.surface.data[self._trace["segment"]].update(vp.segment_props(x, p))
            self.surface.data[self._trace["boundary_point"]].update(vp.marker_props(p))
            for name in ESTIMATES:
                est = sel["estimates"].get(name)
                self.surface.data[self._trace[name]].update(
                    vp.segment_props(x, est[None]) if est is not None else empty
                )

    def _show_selection_info(self, notes):
        sel = self.selection
        ok = "✓ verified" if sel["converged"] else "✗ not verified"
        wrong = sel["pred"] != sel["label"]
        flag = ", <span style='color:#a40000'>misclassified</span>" if wrong else ""
        head = f"<b>{sel['split']} #{sel['row']}</b> (class {sel['label']}, predicted {sel['pred']}{flag})"
        if np.isfinite(sel["margin"]):
            body = (
                f"margin <b>{sel['margin']:.4f}</b> to the boundary with class {sel['boundary_class']}; "
                f"residual |f<sub>i</sub>−f<sub>j</sub>| = {sel['residual']:.1e} ({ok})"
            )
        else:
            body = "no verified boundary point found (the solver did not converge for this sample)"
        extra = []
        for name in ESTIMATES:
            if name in sel.get("estimates", {}) and np.isfinite(sel["margin"]) and sel["margin"] > 0:
                v = sel[name]
                extra.append(f"{name} {v:.4f} ({100 * (v - sel['margin']) / sel['margin']:+.1f}%)")
        if not sel.get("exact", True):
            extra.append("live view: bounded solve, pause for the exact nearest point")
        extra += notes
        self.info.value = head + ": " + body + ("<br>" + " · ".join(extra) if extra else "")
