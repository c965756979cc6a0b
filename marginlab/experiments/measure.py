"""Measure a trained unit: per-sample margins and their references (maximum margins, lower bounds,
normalized margins, the linear SVM), margins over epochs, accuracies and robustness curves.

Every function returns plain values or tidy DataFrames; nothing here trains or writes files.
"""

from __future__ import annotations

import warnings

import numpy as np

from .prepare import attack_rows

__all__ = ["margins", "TrajectoryTracker", "samples_table", "accuracy_summary", "margin_summary",
           "robustness_curves", "svm_reference", "linear_margins", "EMPTY_CURVES", "EMPTY_TRAJECTORY"]

# column order of the tables when a unit has nothing to put in them (no robustness spec, no tracked epochs)
EMPTY_CURVES = ["attack", "eps", "accuracy", "n", "loss", "zero_grad"]
EMPTY_TRAJECTORY = ["epoch", "split", "row", "margin", "correct"]


def margins(spec, model, X, y, *, tracking: bool = False):
    """The spec's margins of ``model`` at ``X`` (a :class:`~marginlab.margins.MarginResult`). During
    training (``tracking``) the spec's ``track_method`` may stand in for a cheaper curve, with its own
    default options."""
    from ..margins import compute_margins

    m = spec.margins
    method = m["track_method"] if tracking and m["track_method"] else m["method"]
    options = m["options"] if method == m["method"] else {}
    return compute_margins(model, X, y=y, method=method, skip_misclassified=m["skip_misclassified"],
                           signed=m["signed"], **options)


def linear_margins(model, X, y) -> np.ndarray:
    """Signed l2 distance to the boundary of a linear binary classifier (exact; used for min-margin tracking
    over the whole training set, seed 002 Fig. 1a)."""
    import torch

    lin = model.blocks[-1][-1]
    W = lin.weight.detach().double()
    b = lin.bias.detach().double() if lin.bias is not None else torch.zeros(W.shape[0], dtype=torch.float64)
    w, c = (W[1] - W[0]).numpy(), float(b[1] - b[0])
    Xf = X.reshape(len(X), -1).astype(np.float64)
    return (Xf @ w + c) * np.where(y == 1, 1.0, -1.0) / max(np.linalg.norm(w), 1e-300)


class TrajectoryTracker:
    """Margins of the measured rows at the spec's ``track_epochs`` (seed 002 Fig. 1): call :meth:`snapshot`
    at epoch 0 and use :meth:`callback` as a training callback; :meth:`table` is the tidy result. For a
    binary linear model the exact minimum over the whole training set is recorded too
    (``split="train-all-min"``)."""

    def __init__(self, spec, model, datasets: dict, rows_by_split: dict, linear: bool):
        self.spec, self.model, self.datasets, self.rows = spec, model, datasets, rows_by_split
        self.epochs = set(spec.margins["track_epochs"])
        self.linear = linear
        self.shape = (-1,) + tuple(model.input_shape)
        self.frames = []

    def callback(self, trainer, record) -> None:
        if trainer.epoch in self.epochs:
            self.snapshot(trainer.epoch)

    def snapshot(self, epoch: int) -> None:
        import pandas as pd

        was = self.model.training
        self.model.eval()
        for s, rows in self.rows.items():
            ds = self.datasets[s]
            res = margins(self.spec, self.model, ds.X[rows].reshape(self.shape), ds.y[rows], tracking=True)
            self.frames.append(pd.DataFrame({"epoch": epoch, "split": s, "row": rows, "margin": res.margin,
                                             "correct": res.pred == ds.y[rows], "method": res.method}))
        if self.linear:  # the minimum over the whole training set, exact for a linear model
            train = self.datasets["train"]
            low = float(linear_margins(self.model, train.X, train.y).min())
            self.frames.append(pd.DataFrame({"epoch": [epoch], "split": ["train-all-min"], "row": [-1],
                                             "margin": [low], "correct": [bool(low > 0)]}))
        self.model.train(was)

    def table(self):
        import pandas as pd

        if not self.frames:
            return pd.DataFrame(columns=EMPTY_TRAJECTORY)
        return pd.concat(self.frames, ignore_index=True)


# -- the per-sample table ---------------------------------------------------------------------------
def samples_table(spec, model, datasets: dict, rows_by_split: dict, *, linear: bool, reference=None):
    """``(samples, svm_summary)``: one row per measured sample with its margin and every reference the spec
    asks for; ``svm_summary`` holds the SVM's scalars (empty without ``svm_reference``). ``reference``: the
    model at initialisation, the spectral complexity's reference weights (seed 001 App. A.1)."""
    import pandas as pd

    svm_summary, svm_split = {}, None
    if spec.margins["svm_reference"]:
        svm_summary, svm_split = svm_reference(datasets["train"], rows_by_split, datasets)
    parts = []
    for s, rows in rows_by_split.items():
        train = datasets["train"] if s == "train" else None
        df = _split_samples(spec, model, s, datasets[s], rows, train=train, reference=reference)
        if svm_split is not None:
            df["svm_margin"] = svm_split[s]
        if linear:
            df["signed_margin"] = linear_margins(model, datasets[s].X[rows], datasets[s].y[rows])
        parts.append(df)
    return pd.concat(parts, ignore_index=True), svm_summary


def _split_samples(spec, model, split, ds, rows, *, train, reference=None):
    """The measured rows of one split; ``train`` (the training set itself, or None for the other splits)
    gives the maximum margins, which are distances between training samples."""
    import pandas as pd

    from ..margins import compute_margins

    X, y = ds.X[rows].reshape((-1,) + tuple(model.input_shape)), ds.y[rows]
    res = margins(spec, model, X, y)
    df = pd.DataFrame({
        "split": split, "row": rows, "sample": ds.index[rows],
        "corrupted": ds.corrupted[rows], "label": y, "label_original": ds.y_original[rows], "pred": res.pred,
        "correct": res.pred == y, "boundary_class": res.boundary_class, "margin": res.margin,
        "converged": res.converged, "residual": res.residual, "status": res.status.astype(str),
    })
    m = spec.margins
    if m["lower_bound"]:
        df["lower_bound"] = compute_margins(model, X, y=y, method=m["lower_bound"]).margin
    if m["max_margin"]:
        after, before = _max_margins(train, rows) if train is not None else (np.nan, np.nan)
        df["max_margin"], df["max_margin_before"] = after, before
    if m["normalized"]:
        nm = _normalized(model, X, y, reference)
        # skip_misclassified (seed 000 §5, seed 001 Figs. 1-2: margins of correctly classified samples)
        keep = df["correct"].to_numpy() | (not m["skip_misclassified"])
        for col in nm.columns:
            df[f"nm_{col}"] = np.where(keep, np.asarray(nm[col]), np.nan)
    return df


def _max_margins(train, rows):
    """Seed 000 Eq. 4: distance to the nearest training sample of a different label, after (current labels and
    inputs) and before corruption (original labels and inputs)."""
    from ..margins.nearest import maximum_margin

    out = []
    for X, y in ((train.X, train.y), (train.X_original, train.y_original)):
        Xf = X.reshape(len(train), -1)
        d = maximum_margin(Xf[rows], y[rows], reference_X=Xf, reference_y=y)
        out.append(np.asarray(d[0] if isinstance(d, tuple) else d, dtype=np.float64))
    return tuple(out)


def _normalized(model, X, y, reference=None):
    """Seed 001's normalized margins (output, Frobenius, spectral; spectral against ``reference``) as a
    DataFrame."""
    import pandas as pd

    from ..margins.normalized import normalized_margins

    out = normalized_margins(model, X, y, reference)
    out = out.to_frame() if hasattr(out, "to_frame") else out
    return out if isinstance(out, pd.DataFrame) else pd.DataFrame(out)


def svm_reference(train, rows_by_split, datasets):
    """Seed 002: the hard-margin linear SVM (large C) on the same training set; its l2 margins.
    Returns ``(summary, {split: signed margins of the measured rows})``."""
    from sklearn.svm import LinearSVC

    X = train.X.reshape(len(train), -1).astype(np.float64)
    svm = LinearSVC(C=1e4, loss="hinge", dual=True, max_iter=200_000, tol=1e-6, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings at this C are expected and do not matter here
        svm.fit(X, train.y)
    w, b = svm.coef_.ravel(), float(svm.intercept_[0])
    norm = np.linalg.norm(w)
    dist = lambda Z, yy: (Z @ w + b) * np.where(yy == 1, 1.0, -1.0) / norm  # signed: negative = wrong side
    all_train = dist(X, train.y)
    per_split = {
        s: dist(datasets[s].X.reshape(len(datasets[s]), -1).astype(np.float64)[r], datasets[s].y[r])
        for s, r in rows_by_split.items()
    }
    summary = {"svm_min_margin": float(all_train.min()), "svm_mean_margin": float(all_train.mean()),
               "svm_train_acc": float((all_train > 0).mean())}
    return summary, per_split


# -- scalars and curves -----------------------------------------------------------------------------
def accuracy_summary(model, train, val) -> dict:
    """Training and validation accuracy, and the training accuracy on clean and on corrupted samples."""
    from ..train import evaluate

    out = {"train_acc": evaluate(model, train)[1], "val_acc": evaluate(model, val)[1] if len(val) else np.nan}
    for name, mask in (("clean", ~train.corrupted), ("corrupt", train.corrupted)):
        out[f"train_acc_{name}"] = evaluate(model, train.subset(mask))[1] if mask.any() else np.nan
    return out


def margin_summary(samples, splits) -> dict:
    """Mean margin and converged fraction per measured split."""
    out = {}
    for s in splits:
        part = samples[samples.split == s]
        out[f"mean_margin_{s}"] = float(part["margin"].mean())
        out[f"converged_{s}"] = float(part["converged"].mean())
    return out


def robustness_curves(spec, model, datasets, seed: int):
    """Robust accuracy per attack and eps on the spec's robustness rows (:mod:`marginlab.attacks`)."""
    import pandas as pd

    from ..attacks import robust_accuracy

    r = spec.robustness
    if not r:
        return pd.DataFrame(columns=EMPTY_CURVES)
    ds = datasets[r["split"]]
    rows = attack_rows(spec, len(ds))
    return robust_accuracy(model, ds.X[rows], ds.y[rows], attacks=r["attacks"], eps=r["eps"],
                           steps=r["steps"], seed=seed, loss=r["loss"])
