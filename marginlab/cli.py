"""The ``marginlab`` console command.

    marginlab demo                 train a small MLP on a built-in dataset and report exact margins
    marginlab demo --dataset mnist --hidden 256 --epochs 5 --corruption label --fraction 0.2
    marginlab info                 versions, devices and where MNIST / CIFAR-10 would be loaded from
    marginlab run missing-margin --quick          a built-in study (smoke version) -> ./marginlab-results/
    marginlab run SPEC.json --out DIR --scheduler tcp://host:8786   a JSON spec on a Dask cluster
    marginlab findings data/results/missing-margin    the paper's claims tested on a results folder

Bad parameters exit with status 2 and a message naming the parameter and the allowed range, before any work.

Each subcommand is one row of :data:`COMMANDS`: a :class:`Command` with its help line, a function adding its
arguments to an ``argparse`` parser, the declared constraints of those arguments (checked before it runs)
and the function that runs it. A new subcommand is a new row.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ._validation import Choice, Int, Nullable, Real, check_widths

__all__ = ["main", "COMMANDS", "Command"]


@dataclass(frozen=True)
class Command:
    """One subcommand: ``arguments(parser)`` declares its options, ``checks`` maps an option's ``dest`` to
    its constraint (a :mod:`marginlab._validation` constraint, called as ``check(value, "--flag")``), and
    ``run(args) -> exit code`` does the work."""

    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    checks: dict = field(default_factory=dict)


# -- demo -------------------------------------------------------------------------------------------
def _toy_and_mnist():
    from .data import TOY_DATASETS

    return (*TOY_DATASETS, "mnist")


def _corruptions():
    from .corruption import CORRUPTIONS

    return CORRUPTIONS


def _methods():
    from .margins import available_methods

    return available_methods(p=2)  # the demo hands methods no reference data


def _demo_arguments(d: argparse.ArgumentParser) -> None:
    d.add_argument("--dataset", default="moons",
                   help="moons, circles, spirals, xor, blobs or mnist (default moons)")
    d.add_argument("--n-samples", type=int, default=600,
                   help="toy datasets: number of points >= 4 (default 600)")
    d.add_argument("--noise", type=float, default=0.15, help="toy datasets: noise level >= 0 (default 0.15)")
    d.add_argument("--hidden", nargs="*", default=None,
                   help="hidden layer widths, e.g. 64 64 or 64,64 (default: 64 64 toy / 256 mnist)")
    d.add_argument("--epochs", type=int, default=None,
                   help="training epochs >= 1 (default 150 toy / 5 mnist)")
    d.add_argument("--lr", type=float, default=None, help="learning rate > 0 (default 0.05)")
    d.add_argument("--corruption", default="none", help="none, label or gaussian (seed 000 §4.1)")
    d.add_argument("--fraction", type=float, default=0.0, help="corrupted fraction in [0, 1]")
    d.add_argument("--method", default="batched", help="margin method (default batched)")
    d.add_argument("--n-margins", type=int, default=200,
                   help="how many training samples get a margin (>= 1)")
    d.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    d.add_argument("--seed", type=int, default=0, help="random seed >= 0")
    d.add_argument("--save", default=None, help="save the trained model to this path")


_DEMO_CHECKS = {
    "dataset": Choice(_toy_and_mnist),
    "n_samples": Int(4),
    "noise": Real(0.0),
    "hidden": Nullable(lambda words, name: check_widths(",".join(words), name)),  # "64 64" or "64,64"
    "epochs": Nullable(Int(1)),
    "lr": Nullable(Real(0.0, closed="neither")),
    "corruption": Choice(_corruptions),
    "fraction": Real(0.0, 1.0),
    "method": Choice(_methods),
    "n_margins": Int(1),
    "seed": Int(0),
}


def _demo(args) -> int:
    import numpy as np

    from .corruption import corrupt
    from .data import load_mnist, load_toy, train_val_split
    from .device import resolve_device
    from .margins import compute_margins
    from .models import MLP, save_model
    from .train import evaluate, fit

    if args.corruption == "none" and args.fraction > 0:
        raise ValueError(f"--fraction {args.fraction:g} needs --corruption label or gaussian (got none)")
    device = resolve_device(args.device)
    if args.dataset == "mnist":
        train, test = train_val_split(load_mnist("train"), val_size=0.2, seed=args.seed)
        hidden, epochs = args.hidden if args.hidden is not None else (256,), 5
    else:
        train, test = load_toy(args.dataset, args.n_samples, noise=args.noise, seed=args.seed)
        hidden, epochs = args.hidden if args.hidden is not None else (64, 64), 150
    epochs = args.epochs if args.epochs is not None else epochs
    lr = args.lr if args.lr is not None else 0.05
    train = corrupt(train, args.corruption, args.fraction, seed=args.seed)
    print(f"data:   {train.source}")
    model = MLP(train.input_shape, hidden, train.n_classes, seed=args.seed)
    print(f"model:  MLP {train.n_features}-{'-'.join(map(str, hidden))}-{train.n_classes} on {device}")
    t0 = time.perf_counter()
    hist = fit(model, train, val=test, epochs=epochs, lr=lr, batch_size=64, target_train_acc=1.0,
               seed=args.seed, device=device, progress=sys.stderr.isatty())
    tr_acc, te_acc = evaluate(model, train)[1], evaluate(model, test)[1]
    print(f"train:  {len(hist)} epochs in {time.perf_counter() - t0:.1f} s; train acc {tr_acc:.4f}, "
          f"test acc {te_acc:.4f}")
    n = min(args.n_margins, len(train))
    sub = train.subset(np.random.default_rng(args.seed).choice(len(train), size=n, replace=False))
    t0 = time.perf_counter()
    res = compute_margins(model, sub.X, y=sub.y, method=args.method, skip_misclassified=True)
    _print_margins(args.method, res, sub, n, time.perf_counter() - t0)
    if args.save:
        print(f"saved:  {save_model(args.save, model, dataset=train, history=hist)}")
    return 0


def _print_margins(method, res, sub, n, dt) -> None:
    import numpy as np

    ok = res.converged
    m = res.margin[ok]
    print(f"margin: {method} on {n} training samples in {dt:.2f} s ({1000 * dt / n:.1f} ms/sample); "
          f"{ok.sum()} verified, {int(res.skipped.sum())} misclassified skipped, "
          f"{int((~ok & ~res.skipped).sum())} not converged")
    if not ok.any():
        return
    print(f"        min {m.min():.4f}  median {np.median(m):.4f}  mean {m.mean():.4f}  "
          f"max {m.max():.4f}; max residual |f_i - f_j| {np.nanmax(res.residual[ok]):.2e}")
    if sub.corruption:
        for name, mask in (("clean", ~sub.corrupted), ("corrupt", sub.corrupted)):
            sel = ok & mask
            if sel.any():
                print(f"        {name}:{sub.corruption}-corrupted mean margin {res.margin[sel].mean():.4f} "
                      f"({sel.sum()} samples)")


# -- info -------------------------------------------------------------------------------------------
def _info(args) -> int:
    import torch

    from . import __version__
    from .data.cifar import cache_dir as cifar_dir
    from .data.cifar import find_cifar10
    from .data.mnist import cache_dir
    from .device import available_devices

    print(f"marginlab {__version__}, torch {torch.__version__}")
    print(f"devices: {', '.join(available_devices())}")
    print(f"MNIST cache: {cache_dir()} (bundled offline subset used when empty)")
    found = find_cifar10()
    print(f"CIFAR-10: {found[1]} ({found[0]})" if found else
          f"CIFAR-10: not found in {cifar_dir()} (place cifar-10-python.tar.gz there or "
          "load_cifar10(download=True))")
    return 0


# -- run --------------------------------------------------------------------------------------------
def _run_arguments(r: argparse.ArgumentParser) -> None:
    r.add_argument("spec", nargs="?", default=None,
                   help="a JSON spec file or a built-in study: missing-margin, missing-margin-cifar10 (needs "
                        "CIFAR-10), normalized-margin, min-vs-average-margin, average-margin-regularizer, "
                        "margin-losses")
    r.add_argument("--quick", action="store_true", help="the small smoke version of the spec")
    r.add_argument("--out", default=None, help="results folder (default ./marginlab-results/<spec name>)")
    r.add_argument("--scheduler", default=None, help="dask.distributed scheduler address (tcp://host:port)")
    r.add_argument("--no-resume", action="store_true", help="recompute units already finished in --out")
    r.add_argument("--no-models", action="store_true", help="do not save the trained models")
    r.add_argument("--list", action="store_true", help="list the built-in studies and exit")
    r.add_argument("--no-findings", action="store_true",
                   help="do not print whether the paper's findings are reproduced (built-in studies)")
    r.add_argument("--dump", action="store_true",
                   help="print the validated spec as JSON and exit (no training)")


def _run(args) -> int:
    from .experiments import STUDIES, load_spec, run_experiment
    from .experiments.runner import UnitsFailed

    if args.list:
        for name, raw in STUDIES.items():
            spec = load_spec(name)
            print(f"{name:28s} {len(spec.units()):4d} units (quick {len(spec.quick_version().units())}); "
                  f"{raw.get('paper', '')}")
        return 0
    if args.spec is None:
        raise ValueError("spec is required: a JSON file or one of " + ", ".join(STUDIES))
    spec = load_spec(args.spec)
    if args.quick:
        spec = spec.quick_version()
    if args.dump:
        print(spec.to_json())
        return 0
    t0 = time.perf_counter()
    print(f"spec:   {spec.name}: {len(spec.units())} units"
          + (f" on the Dask cluster {args.scheduler}" if args.scheduler else ""), flush=True)
    try:
        res = run_experiment(spec, out=args.out, scheduler=args.scheduler, resume=not args.no_resume,
                             save_models=not args.no_models, progress=sys.stderr.isatty())
    except UnitsFailed as exc:  # a failure while running, not bad input: status 1, the units' tracebacks
        print(f"marginlab run: {exc}", file=sys.stderr)
        return 1
    u = res.units
    print(f"done:   {len(u)} units in {time.perf_counter() - t0:.1f} s -> {res.path}")
    cols = [c for c in ("unit_id", "epochs", "train_acc", "val_acc", "mean_margin_train") if c in u]
    print(u[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if not args.no_findings:
        from .experiments.findings import report_for

        report = report_for(res)
        if report is not None:
            print()
            print(report.to_markdown())
    return 0


# -- findings -----------------------------------------------------------------------------------------
def _findings_arguments(f: argparse.ArgumentParser) -> None:
    f.add_argument("path", help="a finished results folder of a built-in study (marginlab run's --out, or a "
                                "shipped data/results/<study> folder)")
    f.add_argument("--json", action="store_true", help="print the verdicts as JSON instead of Markdown")


def _findings(args) -> int:
    import json

    from .experiments.findings import FINDINGS, load_results, report_for

    res = load_results(args.path)
    report = report_for(res)
    if report is None:
        raise ValueError(f"path: {args.path} holds a run of spec {res.spec.name!r}, not of a built-in study "
                         f"({', '.join(FINDINGS)}): there are no paper claims to check")
    print(json.dumps(report.verdicts(), indent=2) if args.json else report.to_markdown())
    return 0


# -- the table of subcommands -----------------------------------------------------------------------
COMMANDS: dict[str, Command] = {
    "demo": Command("train a small model on a built-in dataset and report margins (no network)",
                    _demo_arguments, _demo, _DEMO_CHECKS),
    "info": Command("versions, devices and data locations", lambda parser: None, _info),
    "findings": Command("check a results folder against its paper's claims (statistic, interval, verdict)",
                        _findings_arguments, _findings),
    "run": Command("run an experiment spec (JSON file or built-in study name); resumable", _run_arguments,
                   _run),
}


def _build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="marginlab",
                                 description="Study classification margins of neural networks.")
    sub = ap.add_subparsers(dest="command", required=True)
    for name, cmd in COMMANDS.items():
        cmd.arguments(sub.add_parser(name, help=cmd.help))
    return ap


def _check(args, checks: dict) -> None:
    """Every declared constraint, on the parsed value, named as the user wrote the flag."""
    for dest, check in checks.items():
        setattr(args, dest, check(getattr(args, dest), "--" + dest.replace("_", "-")))


def main(argv=None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    cmd = COMMANDS[args.command]
    try:
        _check(args, cmd.checks)
        return cmd.run(args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        parser.exit(2, f"marginlab {args.command}: error: {exc}\n")
    except KeyboardInterrupt:
        parser.exit(130, "interrupted\n")


if __name__ == "__main__":
    sys.exit(main())
