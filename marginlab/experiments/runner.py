"""Run a spec: expand it into units; for each, prepare -> fit -> measure -> tables; store; resume; Dask.

The four parts live in their own modules: :mod:`.prepare` (data and models), :mod:`.measure` (margins,
trajectories, references, curves), :mod:`.store` (the results folder, atomic writes, fingerprints, resume)
and this one (a unit, and the loop over units, local or on a Dask cluster). A unit's results depend only on
the spec and the unit (its seeds), so a restarted run, a Dask run and a local run produce the same tables.
"""

from __future__ import annotations

import contextlib
import copy
import sys
import time
import traceback
from pathlib import Path

from . import measure, store
from .prepare import as_unit, build_constraints, build_unit_model, margin_rows, prepare_all, prepare_data
from .results import Results
from .spec import ExperimentSpec, load_spec

__all__ = ["run_experiment", "compute_unit", "UnitsFailed"]


class UnitsFailed(RuntimeError):
    """Some units raised; the finished ones are saved and a rerun resumes after them."""


# -- one unit ---------------------------------------------------------------------------------------
def compute_unit(spec, unit) -> dict:
    """Train and measure one unit; returns ``{"summary": dict, "model": model, <table>: DataFrame ...}``.

    Pure with respect to files (the caller writes), so it runs unchanged on a Dask worker."""
    import torch

    spec, unit = load_spec(spec), as_unit(unit)
    t_start = time.perf_counter()
    train, val = prepare_data(spec, unit)
    datasets = {"train": train, "val": val}
    rows = {s: margin_rows(spec, len(datasets[s]), s) for s in spec.margins["splits"]}
    linear = spec.model["family"] == "linear" and train.n_classes == 2
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(unit.seed)
        model = build_unit_model(spec, unit, train.input_shape, train.n_classes)
        # seed 001 App. A.1: the spectral complexity measures the weights' distance from their initial values
        init = copy.deepcopy(model) if spec.margins["normalized"] else None
        tracker = measure.TrajectoryTracker(spec, model, datasets, rows, linear)
        model, hist, t_train = _fit(spec, unit, model, train, val, tracker)
        summary = {**unit.to_dict(), "epochs": len(hist), "train_seconds": t_train,
                   "n_params": int(sum(p.numel() for p in model.parameters())),
                   **measure.accuracy_summary(model, train, val)}
        t0 = time.perf_counter()
        samples, svm = measure.samples_table(spec, model, datasets, rows, linear=linear, reference=init)
        summary.update(svm, margin_seconds=time.perf_counter() - t0, **measure.margin_summary(samples, rows))
        curves = measure.robustness_curves(spec, model, datasets, unit.seed)
    # "missing" stays in the summary for the units table's schema: every measurement is made or raises
    summary.update(missing=[], seconds=time.perf_counter() - t_start)
    tables = {"samples": samples, "history": hist.to_frame(), "curves": curves, "trajectory": tracker.table()}
    return {"summary": summary, "model": model, **_with_unit_axes(tables, unit)}


def _fit(spec, unit, model, train, val, tracker):
    """Train ``model`` with the unit's variant settings; margins are tracked at the listed epochs."""
    from ..train import fit

    s = spec.train_settings(unit.variant)
    callbacks = []
    if tracker.epochs:
        if 0 in tracker.epochs:
            tracker.snapshot(0)
        callbacks.append(tracker.callback)
    t0 = time.perf_counter()
    hist = fit(model, train, val=val if len(val) else None, epochs=s["epochs"], loss=s["loss"],
               loss_options=s["loss_options"], optimizer=s["optimizer"], lr=s["lr"],
               optimizer_options=s["optimizer_options"], batch_size=s["batch_size"], lr_decay=s["lr_decay"],
               lr_decay_every=s["lr_decay_every"], target_train_acc=s["target_train_acc"], seed=unit.seed,
               device=s["device"], constraints=build_constraints(s["constraints"]), callbacks=callbacks,
               progress=False)
    return model.cpu().eval(), hist, time.perf_counter() - t0


def _with_unit_axes(tables: dict, unit) -> dict:
    """The unit's axes on every row, first: tables of all units concatenate into tidy frames."""
    for df in tables.values():
        for k, v in reversed(list(unit.to_dict().items())):
            df.insert(0, k, v)
    return tables


# -- the run ----------------------------------------------------------------------------------------
def run_experiment(spec, *, out=None, quick: bool = False, client=None, scheduler: str | None = None,
                   resume: bool = True, progress: bool | None = None, save_models: bool = True,
                   max_units: int | None = None):
    """Run every unit of ``spec`` (a spec object, dict, JSON path or built-in study name) and return its
    :class:`~marginlab.experiments.Results`.

    ``quick`` runs the spec's smoke version; ``out`` is the results folder (default
    :func:`~marginlab.experiments.store.default_out`); finished units found there are skipped
    (``resume=False`` recomputes them). ``client`` (a ``dask.distributed.Client``) or ``scheduler`` (its
    address) runs the units on a Dask cluster; the workers return results and this process writes them, so no
    shared filesystem is needed. ``max_units`` stops after that many newly computed units (used to simulate an
    interrupted run). Units that raise are reported together at the end (:class:`UnitsFailed`).
    """
    spec = load_spec(spec)
    if quick:
        spec = spec.quick_version()
    out_dir = Path(out) if out is not None else store.default_out(spec)
    fp, units = spec.fingerprint, spec.units()
    store.check_folder(out_dir, spec)
    prepare_all(spec, units)  # data problems (dataset absent, too few samples ...) before any training
    store.claim_folder(out_dir, spec)
    todo = [u for u in units if not (resume and store.is_done(store.unit_dir(out_dir, u), fp))]
    if max_units is not None:
        todo = todo[:max_units]
    from tqdm.auto import tqdm

    bar = tqdm(total=len(units), initial=len(units) - len(todo) if max_units is None else 0, desc=spec.name,
               unit="model", disable=not (sys.stderr.isatty() if progress is None else progress))
    errors = []
    source = _local(spec, todo) if client is None and not scheduler else _dask(spec, todo, client, scheduler)
    with contextlib.closing(source) as results, bar:  # closing: a Dask client opened here is closed
        for u, outcome in results:  # written as they arrive: an interrupted run keeps every finished unit
            bar.set_postfix_str(u.uid)
            try:
                store.write_unit(store.unit_dir(out_dir, u), outcome(), fp, save_models)
            except Exception:  # one unit's failure must not lose the others: all are reported below
                errors.append((u.uid, traceback.format_exc()))
            bar.update(1)
    if errors:
        msg = "\n".join(f"--- {uid}\n{tb}" for uid, tb in errors)
        raise UnitsFailed(f"{len(errors)} unit(s) failed (finished units are saved; rerun to resume):\n{msg}")
    if all(store.is_finished(store.unit_dir(out_dir, u), fp) for u in units):
        store.combine(out_dir, spec)
    return Results(out_dir)


def _local(spec: ExperimentSpec, todo):
    """``(unit, outcome)`` pairs, one unit computed per step (``outcome()`` returns or raises its result)."""
    for u in todo:
        yield u, lambda u=u: compute_unit(spec, u)


def _dask(spec: ExperimentSpec, todo, client, scheduler):
    """``(unit, outcome)`` pairs in the order the cluster finishes them; a client opened here from
    ``scheduler`` is closed when the loop ends."""
    from dask.distributed import Client, as_completed

    own = Client(scheduler) if client is None else None
    client = client or own
    try:
        sd, fp = spec.to_dict(), spec.fingerprint
        futures = {client.submit(compute_unit, sd, u.to_dict(), key=f"marginlab-{fp}-{u.uid}", pure=False): u
                   for u in todo}
        for fut in as_completed(futures):
            yield futures[fut], fut.result
    finally:
        if own is not None:
            own.close()
