"""How often the batched solver's default finds the nearest boundary point, and whether its status says so.

Random, untrained MLPs (what the playground shows at epoch 0: 1-3 hidden layers, widths 16-512, ReLU and
tanh, 2-D inputs in [-2, 2]^2 and 784-D MNIST images) against a heavy reference run of the same solver
(16 starts, 300 iterations, no pruning, another seed). The "best" distance of a sample is the smaller of
the two; per net it prints the share of samples within 0.1 % of the best, the worst gap, the share reported
``converged``, and "false converged": samples reported converged that are more than 0.1 % above the best
(each one is a sample whose status claims more than the solver found).

    python benchmarks/optimality.py              # 40 samples per net, 20 nets
    python benchmarks/optimality.py --quick      # 10 samples per net
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import torch

from marginlab.data import load_mnist
from marginlab.margins import compute_margins
from marginlab.models.mlp import MLP

REFERENCE = dict(restarts=16, max_iter=300, prune=1e9, seed=7)


def inputs(dim, n, seed):
    g = np.random.default_rng(seed)
    if dim == 2:
        return g.uniform(-2, 2, (n, 2)).astype(np.float32)
    ds = load_mnist("train", flatten=True)
    return np.asarray(ds.X[g.choice(len(ds.X), n, replace=False)], np.float32)


def nets():
    dims, acts = (2, 784), ("relu", "tanh")
    hiddens = ((16,), (64, 64), (256, 256), (512,), (32, 32, 32))
    for k, (dim, act, hidden) in enumerate(itertools.product(dims, acts, hiddens)):
        yield k, dim, act, hidden


def run_net(k, dim, act, hidden, n):
    net = MLP((dim,), hidden, 10 if dim == 784 else 4, activation=act, seed=k)
    X = inputs(dim, n, k)
    t = time.perf_counter()
    r = compute_margins(net, X)
    secs = (time.perf_counter() - t) / n
    ref = compute_margins(net, X, **REFERENCE)
    best = np.fmin(r.margin, ref.margin)
    gap = r.margin / best - 1
    within = gap <= 1e-3
    statuses = dict(zip(*np.unique(r.status, return_counts=True)))
    return dict(net=f"{dim}-{'-'.join(map(str, hidden))}-{act}", within=within.mean(),
                worst=np.nanmax(gap), converged=r.converged.mean(), false=int((r.converged & ~within).sum()),
                ms=secs * 1e3, statuses=statuses, n=n)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=40, help="samples per net (default 40)")
    ap.add_argument("--quick", action="store_true", help="10 samples per net")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    n = 10 if args.quick else args.n
    rows = [run_net(*spec, n) for spec in nets()]
    print(f"{'net':22s} {'within 0.1%':>11s} {'worst':>8s} {'converged':>9s} {'false conv':>10s} "
          f"{'ms/sample':>9s}  statuses")
    for r in rows:
        st = ", ".join(f"{k}: {v}" for k, v in r["statuses"].items())
        print(f"{r['net']:22s} {r['within']:11.3f} {r['worst']:+8.4f} {r['converged']:9.2f} {r['false']:10d} "
              f"{r['ms']:9.1f}  {st}")
    total = sum(r["n"] for r in rows)
    print(f"all nets: {sum(r['within'] * r['n'] for r in rows) / total:.3f} within 0.1 % of the best, "
          f"{sum(r['false'] for r in rows)} of {total} samples falsely converged")


if __name__ == "__main__":
    main()
