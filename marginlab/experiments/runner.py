"""Run a spec: expand it into units, train each model, measure it, store tidy tables; resume; Dask.

Layout of a results folder ``OUT`` (one per spec)::

    OUT/spec.json                      the validated spec (its fingerprint guards against mixing specs)
    OUT/units/<unit_id>/model.pt       trained model (marginlab.models.save_model format)
    OUT/units/<unit_id>/*.parquet      samples / history / curves / trajectory of that unit
    OUT/units/<unit_id>/summary.json   per-unit scalars; written LAST, so its presence marks a finished unit
    OUT/samples.parquet ...            all units concatenated in spec order (rebuilt at the end of every run)

Every file is written to a temporary name in the same folder and renamed (atomic on POSIX), so a killed run
leaves either a finished unit or none. A unit's results depend only on the spec and the unit (its seeds), so a
restarted run, a Dask run and a local run produce the same tables.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

from .._files import atomic_path, atomic_write_json
from .spec import ExperimentSpec, Unit, load_spec

__all__ = [
    "run_experiment", "compute_unit", "prepare_data", "build_unit_model", "check_data_available", "TABLES",
    "default_out",
]

TABLES = ("samples", "history", "curves", "trajectory")


# -- data -------------------------------------------------------------------------------------------
def _data_key(spec: ExperimentSpec, unit: Unit) -> str:
    key = {
        "data": spec.data,
        "corruption": unit.corruption,
        "fraction": unit.fraction,
        "n_train": unit.n_train,
    }
    if spec.data["dataset"] == "cifar10":  # the cache folder follows $MARGINLAB_DATA: part of the cache key
        from ..data.cifar import cache_dir

        key["location"] = str(cache_dir())
    return json.dumps(key, sort_keys=True)


def check_data_available(spec) -> None:
    """Raise :class:`FileNotFoundError` (naming the dataset, the spec and how to get the data) when the spec's
    dataset is not on this machine. Only CIFAR-10 can be missing: MNIST falls back on its bundled subset."""
    spec = load_spec(spec)
    if spec.data["dataset"] == "cifar10":
        from ..data.cifar import _how_to_get, cache_dir, cifar10_available

        if not cifar10_available():
            raise FileNotFoundError(
                f"spec {spec.name!r} needs the CIFAR-10 dataset, which is not in {cache_dir()} (nothing "
                f"was trained): {_how_to_get(cache_dir())}"
            )


@lru_cache(maxsize=16)
def _prepare_cached(key: str):
    d = json.loads(key)
    return _prepare(d["data"], d["corruption"], d["fraction"], d["n_train"])


def _prepare(data: dict, kind: str, fraction: float, n_train):
    from ..corruption import corrupt
    from ..data import binary_relabel, class_subset, load_cifar10, load_mnist, load_toy, project_sphere

    if data["dataset"] == "mnist":
        pool, vpool = load_mnist("train"), load_mnist("test")
    elif data["dataset"] == "cifar10":
        pool, vpool = load_cifar10("train"), load_cifar10("test")
    else:
        pool, vpool = load_toy(data["dataset"], data["n_samples"], noise=data["noise"], seed=data["seed"])
    if data["classes"] is not None:
        pool, vpool = class_subset(pool, data["classes"]), class_subset(vpool, data["classes"])
    if data["binary"] is not None:
        pool, vpool = binary_relabel(pool, data["binary"]), binary_relabel(vpool, data["binary"])
    rng = np.random.default_rng(data["seed"])
    # one fixed permutation per pool: smaller training sets are prefixes of larger ones (nested sweeps)
    perm = rng.permutation(len(pool))
    if n_train is not None:
        if n_train > len(pool):
            raise ValueError(
                f"spec.data.n_train / spec.train_sizes asks for {n_train} training samples but "
                f"only {len(pool)} are available ({pool.source})"
            )
        perm = perm[:n_train]
    train = pool.subset(perm)
    if data["n_val"] > len(vpool):
        raise ValueError(
            f"spec.data.n_val={data['n_val']} exceeds the {len(vpool)} available validation samples"
        )
    val = vpool.subset(rng.permutation(len(vpool))[: data["n_val"]])
    if data["sphere"]:
        train, val = project_sphere(train), project_sphere(val)
    if kind == "random":
        train = _random_labels(train, fraction, data["seed"])
    else:
        train = corrupt(train, kind, fraction, seed=data["seed"])
    return train, val


def _random_labels(ds, fraction, seed):
    """Seed 001's random-label task: ``fraction`` of the labels redrawn uniformly from all classes."""
    rng = np.random.default_rng(seed)
    k = int(round(fraction * len(ds)))
    mask = np.zeros(len(ds), bool)
    mask[rng.choice(len(ds), size=k, replace=False)] = True
    y = ds.y.copy()
    y[mask] = rng.integers(0, ds.n_classes, size=k)
    return ds.replace(
        y=y,
        y_original=ds.y.copy(),
        corrupted=mask,
        corruption="label",
        corruption_fraction=fraction,
        source=f"{ds.source} | random labels {fraction:g} (seed {seed})",
    )


def prepare_data(spec, unit):
    """``(train, val)`` Datasets of ``unit`` exactly as the runner used them (cached per process)."""
    spec = load_spec(spec)
    unit = _as_unit(unit)
    return _prepare_cached(_data_key(spec, unit))


def _margin_rows(spec: ExperimentSpec, n: int, split: str) -> np.ndarray:
    # the same rows for every unit sharing a training set: capacities and seeds are compared sample by sample
    rng = np.random.default_rng(spec.data["seed"] + (1 if split == "train" else 2))
    return np.sort(rng.permutation(n)[: spec.margins["n_samples"]])


# -- model ------------------------------------------------------------------------------------------
def build_unit_model(spec, unit, input_shape, n_classes):
    """The untrained model of ``unit`` (initialised from ``unit.seed``)."""
    from ..models import CNN, MLP, LinearModel

    m = spec.model
    if m["family"] == "linear":
        return LinearModel(input_shape, n_classes, bias=m["bias"], seed=unit.seed)
    if m["family"] == "cnn":
        shape = tuple(input_shape)
        if len(shape) == 2:
            shape = (1,) + shape
        return CNN(
            unit.capacity,
            input_shape=shape,
            n_classes=n_classes,
            fc=m["fc"],
            activation=m["activation"],
            seed=unit.seed,
        )
    return MLP(
        input_shape,
        (unit.capacity,) * m["depth"],
        n_classes,
        activation=m["activation"],
        bias=m["bias"],
        seed=unit.seed,
    )


def _constraints(items):
    from ..train.optim import FrobeniusProjection, SpectralProjection

    out = []
    for c in items:
        scale = 1.0 if c.get("max_norm") is None else c["max_norm"]
        cls = FrobeniusProjection if c["kind"] == "frobenius" else SpectralProjection
        out.append(cls(scale, layers=c.get("layers")))
    return out


# -- measurements -----------------------------------------------------------------------------------
def _margins(spec, model, X, y, *, tracking=False):
    from ..margins import compute_margins

    m = spec.margins
    # margins during training may use a cheaper method (track_method); its own default options then
    method = m["track_method"] if tracking and m["track_method"] else m["method"]
    options = m["options"] if method == m["method"] else {}
    return compute_margins(
        model, X, y=y, method=method, skip_misclassified=m["skip_misclassified"], signed=m["signed"],
        **options,
    )


def _optional(module: str, name: str):
    """A function from another room that may not be installed yet; None (the unit records it) if absent."""
    import importlib

    try:
        return getattr(importlib.import_module(f"marginlab.{module}"), name)
    except (ImportError, AttributeError):
        return None


def _max_margins(train, rows):
    """Seed 000 Eq. 4: distance to the nearest training sample of a different label, after (current labels and
    inputs) and before corruption (original labels and inputs)."""
    fn = _optional("margins.nearest", "maximum_margin")
    if fn is None:
        return None
    Xf = train.X.reshape(len(train), -1)
    Xo = train.X_original.reshape(len(train), -1)
    after = np.asarray(_call_maxmargin(fn, Xf[rows], train.y[rows], Xf, train.y), dtype=np.float64)
    before = np.asarray(
        _call_maxmargin(fn, Xo[rows], train.y_original[rows], Xo, train.y_original), dtype=np.float64
    )
    return after, before


def _call_maxmargin(fn, Xq, yq, Xr, yr):
    out = fn(Xq, yq, reference_X=Xr, reference_y=yr)
    return out[0] if isinstance(out, tuple) else out


def _normalized(model, X, y):
    fn = _optional("margins.normalized", "normalized_margins")
    if fn is None:
        return None
    out = fn(model, X, y)
    if hasattr(out, "to_frame"):
        out = out.to_frame()
    import pandas as pd

    return pd.DataFrame(out) if not isinstance(out, pd.DataFrame) else out


def _svm_reference(train, rows_by_split, datasets):
    """Seed 002: the hard-margin linear SVM (large C) on the same training set; its l2 margins."""
    from sklearn.svm import LinearSVC

    X = train.X.reshape(len(train), -1).astype(np.float64)
    svm = LinearSVC(C=1e4, loss="hinge", dual=True, max_iter=200_000, tol=1e-6, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        svm.fit(X, train.y)
    w, b = svm.coef_.ravel(), float(svm.intercept_[0])
    norm = np.linalg.norm(w)
    dist = lambda Z, yy: (Z @ w + b) * np.where(yy == 1, 1.0, -1.0) / norm  # signed: negative = wrong side
    all_train = dist(X, train.y)
    per_split = {
        s: dist(datasets[s].X.reshape(len(datasets[s]), -1).astype(np.float64)[r], datasets[s].y[r])
        for s, r in rows_by_split.items()
    }
    return {
        "svm_min_margin": float(all_train.min()),
        "svm_mean_margin": float(all_train.mean()),
        "svm_train_acc": float((all_train > 0).mean()),
    }, per_split


def _linear_margins_all(model, X, y):
    """Signed l2 distance to the boundary of a linear binary classifier (exact; used for min-margin tracking
    over the whole training set, seed 002 Fig. 1a)."""
    import torch

    lin = model.blocks[-1][-1]
    W = lin.weight.detach().double()
    b = lin.bias.detach().double() if lin.bias is not None else torch.zeros(W.shape[0], dtype=torch.float64)
    w, c = (W[1] - W[0]).numpy(), float(b[1] - b[0])
    Xf = X.reshape(len(X), -1).astype(np.float64)
    return (Xf @ w + c) * np.where(y == 1, 1.0, -1.0) / max(np.linalg.norm(w), 1e-300)


# -- one unit ---------------------------------------------------------------------------------------
def _as_unit(unit) -> Unit:
    if isinstance(unit, Unit):
        return unit
    d = dict(unit)
    d.pop("unit_id", None)
    return Unit(**d)


def compute_unit(spec, unit) -> dict:
    """Train and measure one unit; returns ``{"summary": dict, "model": model, <table>: DataFrame ...}``.

    Pure with respect to files (the caller writes), so it runs unchanged on a Dask worker."""
    import pandas as pd
    import torch

    from ..train import evaluate, fit

    spec, unit = load_spec(spec), _as_unit(unit)
    base = unit.to_dict()
    t_start = time.perf_counter()
    train, val = prepare_data(spec, unit)
    datasets = {"train": train, "val": val}
    settings = spec.train_settings(unit.variant)
    missing = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(unit.seed)
        model = build_unit_model(spec, unit, train.input_shape, train.n_classes)
        shape = (-1,) + tuple(model.input_shape)
        rows_by_split = {s: _margin_rows(spec, len(datasets[s]), s) for s in spec.margins["splits"]}

        # margins over epochs (seed 002 Fig. 1): a callback at the listed epochs
        track = sorted(set(spec.margins["track_epochs"]))
        traj = []
        is_linear = spec.model["family"] == "linear" and train.n_classes == 2

        def snapshot(epoch):
            was = model.training
            model.eval()
            for s, rows in rows_by_split.items():
                ds = datasets[s]
                res = _margins(spec, model, ds.X[rows].reshape(shape), ds.y[rows], tracking=True)
                traj.append(
                    pd.DataFrame(
                        {
                            "epoch": epoch,
                            "split": s,
                            "row": rows,
                            "margin": res.margin,
                            "correct": res.pred == ds.y[rows],
                            "method": res.method,
                        }
                    )
                )
            if is_linear:  # the minimum over the whole training set, exact for a linear model
                allm = _linear_margins_all(model, train.X, train.y)
                traj.append(
                    pd.DataFrame(
                        {
                            "epoch": [epoch],
                            "split": ["train-all-min"],
                            "row": [-1],
                            "margin": [float(allm.min())],
                            "correct": [bool(allm.min() > 0)],
                        }
                    )
                )
            model.train(was)

        callbacks = []
        if track:
            if 0 in track:
                snapshot(0)

            def on_epoch(trainer, record):
                if trainer.epoch in track:
                    snapshot(trainer.epoch)

            callbacks.append(on_epoch)

        t0 = time.perf_counter()
        hist = fit(
            model,
            train,
            val=val if len(val) else None,
            epochs=settings["epochs"],
            loss=settings["loss"],
            loss_options=settings["loss_options"],
            optimizer=settings["optimizer"],
            lr=settings["lr"],
            optimizer_options=settings["optimizer_options"],
            batch_size=settings["batch_size"],
            lr_decay=settings["lr_decay"],
            lr_decay_every=settings["lr_decay_every"],
            target_train_acc=settings["target_train_acc"],
            seed=unit.seed,
            device=settings["device"],
            constraints=_constraints(settings["constraints"]),
            callbacks=callbacks,
            progress=False,
        )
        t_train = time.perf_counter() - t0
        model = model.cpu().eval()

        summary = dict(base)
        summary.update(
            epochs=len(hist),
            train_seconds=t_train,
            n_params=int(sum(p.numel() for p in model.parameters())),
            train_acc=evaluate(model, train)[1],
            val_acc=evaluate(model, val)[1] if len(val) else np.nan,
        )
        for name, mask in (("clean", ~train.corrupted), ("corrupt", train.corrupted)):
            summary[f"train_acc_{name}"] = evaluate(model, train.subset(mask))[1] if mask.any() else np.nan

        # final per-sample table
        t0 = time.perf_counter()
        parts = []
        svm_split = None
        if spec.margins["svm_reference"]:
            svm_summary, svm_split = _svm_reference(train, rows_by_split, datasets)
            summary.update(svm_summary)
        for s, rows in rows_by_split.items():
            ds = datasets[s]
            X, y = ds.X[rows].reshape(shape), ds.y[rows]
            res = _margins(spec, model, X, y)
            df = pd.DataFrame(
                {
                    "split": s,
                    "row": rows,
                    "sample": ds.index[rows],
                    "corrupted": ds.corrupted[rows],
                    "label": y,
                    "label_original": ds.y_original[rows],
                    "pred": res.pred,
                    "correct": res.pred == y,
                    "boundary_class": res.boundary_class,
                    "margin": res.margin,
                    "converged": res.converged,
                    "residual": res.residual,
                }
            )
            if spec.margins["lower_bound"]:
                from ..margins import compute_margins

                try:
                    lb = compute_margins(model, X, y=y, method=spec.margins["lower_bound"])
                    df["lower_bound"] = lb.margin
                except (ImportError, ModuleNotFoundError):
                    missing.append(f"lower_bound:{spec.margins['lower_bound']}")
                    df["lower_bound"] = np.nan
            if spec.margins["max_margin"]:
                if s == "train":
                    mm = _max_margins(train, rows)
                    if mm is None:
                        missing.append("max_margin (marginlab.margins.nearest.maximum_margin)")
                    df["max_margin"] = np.nan if mm is None else mm[0]
                    df["max_margin_before"] = np.nan if mm is None else mm[1]
                else:
                    df["max_margin"] = df["max_margin_before"] = np.nan
            if spec.margins["normalized"]:
                nm = _normalized(model, X, y)
                if nm is None:
                    missing.append("normalized (marginlab.margins.normalized.normalized_margins)")
                else:
                    for col in nm.columns:
                        df[f"nm_{col}"] = np.asarray(nm[col])
            if svm_split is not None:
                df["svm_margin"] = svm_split[s]
            if is_linear:
                df["signed_margin"] = _linear_margins_all(model, ds.X[rows], y)
            parts.append(df)
        samples = pd.concat(parts, ignore_index=True)
        summary["margin_seconds"] = time.perf_counter() - t0
        for s in rows_by_split:
            m = samples.loc[samples.split == s, "margin"]
            summary[f"mean_margin_{s}"] = float(m.mean())
            summary[f"converged_{s}"] = float(samples.loc[samples.split == s, "converged"].mean())

        curves = pd.DataFrame(columns=["attack", "eps", "accuracy", "n", "loss", "zero_grad"])
        if spec.robustness:
            from .robustness import robust_accuracy

            r = spec.robustness
            ds = datasets[r["split"]]
            rows = np.random.default_rng(spec.data["seed"] + 3).permutation(len(ds))[: r["n_samples"]]
            curves = robust_accuracy(
                model,
                ds.X[rows],
                ds.y[rows],
                attacks=r["attacks"],
                eps=r["eps"],
                steps=r["steps"],
                seed=unit.seed,
                loss=r["loss"],
            )
    summary["missing"] = sorted(set(missing))
    summary["seconds"] = time.perf_counter() - t_start
    tables = {
        "samples": samples,
        "history": hist.to_frame(),
        "curves": curves,
        "trajectory": pd.concat(traj, ignore_index=True)
        if traj
        else pd.DataFrame(columns=["epoch", "split", "row", "margin", "correct"]),
    }
    for df in tables.values():  # the unit's axes on every row: tables concatenate into tidy frames
        for k, v in reversed(list(base.items())):
            df.insert(0, k, v)
    return {"summary": summary, "model": model, **tables}


# -- files ------------------------------------------------------------------------------------------
def _write_json(path: Path, obj):
    atomic_write_json(path, obj, sort_keys=True, default=_json_default)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def _write_parquet(path: Path, df):
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False, engine="pyarrow")


def _write_unit(udir: Path, out: dict, fingerprint: str, save_models: bool):
    from ..models import save_model

    for t in TABLES:
        _write_parquet(udir / f"{t}.parquet", out[t])
    if save_models:
        save_model(udir / "model.pt", out["model"], extra={"unit": out["summary"]["unit_id"]})
    _write_json(udir / "summary.json", {**out["summary"], "fingerprint": fingerprint})  # last: marks "done"


def _is_done(udir: Path, fingerprint: str) -> bool:
    try:
        s = json.loads((udir / "summary.json").read_text())
    except (OSError, ValueError):
        return False
    # a unit that could not make every measurement (a dependency was missing) is redone on the next run
    return s.get("fingerprint") == fingerprint and not s.get("missing")


def _is_finished(udir: Path, fingerprint: str) -> bool:
    try:
        return json.loads((udir / "summary.json").read_text()).get("fingerprint") == fingerprint
    except (OSError, ValueError):
        return False


def default_out(spec: ExperimentSpec) -> Path:
    """``$MARGINLAB_RESULTS/<name>`` or ``./marginlab-results/<name>``."""
    return Path(os.environ.get("MARGINLAB_RESULTS", "marginlab-results")) / spec.name


def _combine(out_dir: Path, spec: ExperimentSpec):
    import pandas as pd

    summaries = []
    for t in TABLES:
        frames = [pd.read_parquet(out_dir / "units" / u.uid / f"{t}.parquet") for u in spec.units()]
        frames = [f for f in frames if len(f)]
        df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        _write_parquet(out_dir / f"{t}.parquet", df)
    for u in spec.units():
        s = json.loads((out_dir / "units" / u.uid / "summary.json").read_text())
        s.pop("fingerprint", None)
        s["missing"] = ";".join(s.get("missing", []))
        summaries.append(s)
    _write_parquet(out_dir / "units.parquet", pd.DataFrame(summaries))


# -- the run ----------------------------------------------------------------------------------------
def run_experiment(
    spec,
    *,
    out=None,
    quick: bool = False,
    client=None,
    scheduler: str | None = None,
    resume: bool = True,
    progress: bool | None = None,
    save_models: bool = True,
    max_units: int | None = None,
):
    """Run every unit of ``spec`` (a spec object, dict, JSON path or built-in study name) and return its
    :class:`~marginlab.experiments.Results`.

    ``quick`` runs the spec's smoke version; ``out`` is the results folder (default :func:`default_out`);
    finished units found there are skipped (``resume=False`` recomputes them). ``client`` (a
    ``dask.distributed.Client``) or ``scheduler`` (its address) runs the units on a Dask cluster; the workers
    return results and this process writes them, so no shared filesystem is needed. ``max_units`` stops after
    that many newly computed units (used to simulate an interrupted run).
    """
    from .results import Results

    spec = load_spec(spec)
    if quick:
        spec = spec.quick_version()
    out_dir = Path(out) if out is not None else default_out(spec)
    fp = spec.fingerprint
    spec_file = out_dir / "spec.json"
    if spec_file.exists():
        old = ExperimentSpec.from_dict(json.loads(spec_file.read_text()))
        if old.fingerprint != fp:
            raise ValueError(
                f"out: {out_dir} holds results of a different spec ({old.name!r}, fingerprint "
                f"{old.fingerprint}); choose another --out folder or delete it"
            )
    units = spec.units()
    # data problems (dataset absent, too few samples ...) are found before any training
    check_data_available(spec)
    for key in {_data_key(spec, u) for u in units}:
        _prepare_cached(key)
    _write_json(spec_file, spec.to_dict())
    todo = [u for u in units if not (resume and _is_done(out_dir / "units" / u.uid, fp))]
    if max_units is not None:
        todo = todo[:max_units]
    progress = sys.stderr.isatty() if progress is None else progress
    from tqdm.auto import tqdm

    bar = tqdm(
        total=len(units),
        initial=len(units) - len(todo) if max_units is None else 0,
        desc=spec.name,
        unit="model",
        disable=not progress,
    )
    errors = []
    own_client = None
    try:
        if client is None and scheduler:
            from dask.distributed import Client

            client = own_client = Client(scheduler)
        if client is None:
            for u in todo:
                bar.set_postfix_str(u.uid)
                try:
                    _write_unit(out_dir / "units" / u.uid, compute_unit(spec, u), fp, save_models)
                except Exception as exc:  # keep going: finished units stay on disk
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    errors.append((u.uid, traceback.format_exc()))
                bar.update(1)
        else:
            from dask.distributed import as_completed

            sd = spec.to_dict()
            futures = {
                client.submit(compute_unit, sd, u.to_dict(), key=f"marginlab-{fp}-{u.uid}", pure=False): u
                for u in todo
            }
            for fut in as_completed(futures):
                u = futures[fut]
                try:
                    _write_unit(out_dir / "units" / u.uid, fut.result(), fp, save_models)
                except Exception:
                    errors.append((u.uid, traceback.format_exc()))
                bar.update(1)
    finally:
        bar.close()
        if own_client is not None:
            own_client.close()
    if errors:
        msg = "\n".join(f"--- {uid}\n{tb}" for uid, tb in errors)
        raise RuntimeError(
            f"{len(errors)} unit(s) failed (finished units are saved; rerun to resume):\n{msg}"
        )
    if all(_is_finished(out_dir / "units" / u.uid, fp) for u in units):
        _combine(out_dir, spec)
    return Results(out_dir)
