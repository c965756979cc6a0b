"""The ``marginlab`` console command.

    marginlab demo                 train a small MLP on a built-in dataset and report exact margins
    marginlab demo --dataset mnist --hidden 256 --epochs 5 --corruption label --fraction 0.2
    marginlab info                 versions, devices and where MNIST / CIFAR-10 would be loaded from
    marginlab run missing-margin --quick          a built-in study (smoke version) -> ./marginlab-results/
    marginlab run SPEC.json --out DIR --scheduler tcp://host:8786   a JSON spec on a Dask cluster

Bad parameters exit with status 2 and a message naming the parameter and the allowed range.
"""

from __future__ import annotations

import argparse
import sys
import time

__all__ = ["main"]


def _build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="marginlab",
                                 description="Study classification margins of neural networks.")
    sub = ap.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo",
                       help="train a small model on a built-in dataset and report margins (no network)")
    d.add_argument("--dataset", default="moons",
                   help="moons, circles, spirals, xor, blobs or mnist (default moons)")
    d.add_argument("--n-samples", type=int, default=600, help="toy datasets: number of points (default 600)")
    d.add_argument("--noise", type=float, default=0.15, help="toy datasets: noise level >= 0 (default 0.15)")
    d.add_argument("--hidden", type=int, nargs="*", default=None,
                   help="hidden layer widths (default: 64 64 for toy data, 256 for mnist)")
    d.add_argument("--epochs", type=int, default=None, help="training epochs (default 150 toy / 5 mnist)")
    d.add_argument("--lr", type=float, default=None, help="learning rate > 0 (default 0.05 toy / 0.05 mnist)")
    d.add_argument("--corruption", default="none", help="none, label or gaussian (seed 000 §4.1)")
    d.add_argument("--fraction", type=float, default=0.0, help="corrupted fraction in [0, 1]")
    d.add_argument("--method", default="batched", help="margin method (default batched)")
    d.add_argument("--n-margins", type=int, default=200, help="how many training samples get a margin")
    d.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--save", default=None, help="save the trained model to this path")

    sub.add_parser("info", help="versions, devices and data locations")

    r = sub.add_parser("run", help="run an experiment spec (JSON file or built-in study name); resumable")
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
    return ap


def _demo(args) -> int:
    import numpy as np

    from .corruption import corrupt
    from .data import load_mnist, load_toy, train_val_split
    from .device import resolve_device
    from .margins import compute_margins
    from .models import MLP, save_model
    from .train import evaluate, fit

    device = resolve_device(args.device)
    is_mnist = args.dataset.lower() == "mnist"
    if is_mnist:
        train, test = train_val_split(load_mnist("train"), val_size=0.2, seed=args.seed)
        hidden = tuple(args.hidden) if args.hidden is not None else (256,)
        epochs, lr = args.epochs or 5, args.lr or 0.05
    else:
        train, test = load_toy(args.dataset, args.n_samples, noise=args.noise, seed=args.seed)
        hidden = tuple(args.hidden) if args.hidden is not None else (64, 64)
        epochs, lr = args.epochs or 150, args.lr or 0.05
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
    rows = np.random.default_rng(args.seed).choice(len(train), size=n, replace=False)
    sub = train.subset(rows)
    t0 = time.perf_counter()
    res = compute_margins(model, sub.X, y=sub.y, method=args.method, skip_misclassified=True)
    dt = time.perf_counter() - t0
    ok = res.converged
    m = res.margin[ok]
    print(f"margin: {args.method} on {n} training samples in {dt:.2f} s ({1000 * dt / n:.1f} ms/sample); "
          f"{ok.sum()} verified, {int(res.skipped.sum())} misclassified skipped, "
          f"{int((~ok & ~res.skipped).sum())} not converged")
    if ok.any():
        print(f"        min {m.min():.4f}  median {np.median(m):.4f}  mean {m.mean():.4f}  "
              f"max {m.max():.4f}; max residual |f_i - f_j| {np.nanmax(res.residual[ok]):.2e}")
        if train.corruption:
            for name, mask in (("clean", ~sub.corrupted), ("corrupt", sub.corrupted)):
                sel = ok & mask
                if sel.any():
                    print(f"        {name}:{train.corruption}-corrupted mean margin "
                          f"{res.margin[sel].mean():.4f} ({sel.sum()} samples)")
    if args.save:
        path = save_model(args.save, model, dataset=train, history=hist)
        print(f"saved:  {path}")
    return 0


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


def _run(args) -> int:
    import json

    from .experiments import STUDIES, load_spec, run_experiment

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
    res = run_experiment(spec, out=args.out, scheduler=args.scheduler, resume=not args.no_resume,
                         save_models=not args.no_models, progress=sys.stderr.isatty())
    u = res.units
    print(f"done:   {len(u)} units in {time.perf_counter() - t0:.1f} s -> {res.path}")
    cols = [c for c in ("unit_id", "epochs", "train_acc", "val_acc", "mean_margin_train") if c in u]
    print(u[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if res.missing:
        print("missing measurements (dependency not installed): " + json.dumps(res.missing))
    if not args.no_findings:
        from .experiments.findings import report_for

        report = report_for(res)
        if report is not None:
            print()
            print(report.to_markdown())
    return 0


def main(argv=None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return {"demo": _demo, "info": _info, "run": _run}[args.command](args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        parser.exit(2, f"marginlab {args.command}: error: {exc}\n")
    except KeyboardInterrupt:
        parser.exit(130, "interrupted\n")


if __name__ == "__main__":
    sys.exit(main())
