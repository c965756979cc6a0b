"""Benchmark the margin methods on one trained 784-1000-10 ReLU MLP and the same MNIST test samples.

Prints seconds per sample, ratio to nlopt, median/max relative gap to the best distance found by any exact
method, and the share of samples within 0.1% of the best.

    python benchmarks/margins.py --quick            # 10 samples, nlopt on 2 processes
    python benchmarks/margins.py -n 50              # the issue's setting
    python benchmarks/margins.py --gpu-scale --device cuda   # 10,000 samples x 9 classes, 784-10000-10
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from marginlab.data import load_mnist
from marginlab.margins import compute_margins
from marginlab.models.mlp import MLP
from marginlab.train.fit import fit


def trained_mlp(width, device, epochs=5):
    tr = load_mnist("train", flatten=True)
    m = MLP((784,), (width,), 10, seed=0)
    fit(m, tr, epochs=epochs, lr=1e-3, optimizer="adam", batch_size=128, progress=False, device=device)
    return m.to(device)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=50, help="MNIST test samples (default 50)")
    ap.add_argument("--quick", action="store_true", help="10 samples")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n-jobs", type=int, default=2, help="nlopt processes")
    ap.add_argument("--skip-nlopt", action="store_true")
    ap.add_argument("--threads", type=int, default=2,
                    help="torch threads for the batched methods (on a loaded shared machine 1 avoids OpenMP "
                         "thrashing; nlopt's processes use one thread each)")
    ap.add_argument("--gpu-scale", action="store_true",
                    help="time batched on 10,000 samples, 784-10000-10 MLP")
    args = ap.parse_args(argv)
    if args.gpu_scale:
        m = trained_mlp(10000, args.device, epochs=2)
        X = torch.as_tensor(load_mnist("test", flatten=True).X[:10000])
        t = time.perf_counter()
        r = compute_margins(m, X, method="batched", device=args.device, chunk_size=1024)
        dt = time.perf_counter() - t
        print(f"gpu-scale: {len(X)} samples x 9 classes in {dt:.1f} s ({dt / len(X) * 1e3:.2f} ms/sample), "
              f"converged {r.converged.mean():.2%}")
        return
    n = 10 if args.quick else args.n
    torch.set_num_threads(2)
    m = trained_mlp(1000, args.device)
    torch.set_num_threads(args.threads)
    X = torch.as_tensor(load_mnist("test", flatten=True).X[:n])
    methods = {"batched": {}, "deepfool": {}, "linearized": {}}
    if not args.skip_nlopt:
        methods["nlopt"] = {"n_jobs": args.n_jobs}
    results, secs = {}, {}
    for name, kw in methods.items():
        t = time.perf_counter()
        results[name] = compute_margins(m, X, method=name, device=args.device, **kw)
        secs[name] = (time.perf_counter() - t) / n
    exact = [k for k in results if not results[k].estimate]
    best = np.nanmin(np.stack([results[k].margin for k in exact]), 0)
    print(f"{n} MNIST test samples, 784-1000-10 ReLU MLP, device {args.device}, "
          f"{args.threads} torch thread(s)")
    print(f"{'method':12s} {'s/sample':>10s} {'vs nlopt':>9s} {'conv':>6s} {'med gap':>9s} {'max gap':>9s} "
          f"{'<=0.1%':>7s} {'max vs nlopt':>12s}")
    for k, r in results.items():
        gap = (r.margin - best) / best
        ratio = secs["nlopt"] / secs[k] if "nlopt" in secs else float("nan")
        vs = (np.nanmax((r.margin - results["nlopt"].margin) / results["nlopt"].margin)
              if "nlopt" in results else float("nan"))
        print(f"{k:12s} {secs[k]:10.4f} {ratio:8.1f}x {r.converged.mean():6.0%} {np.nanmedian(gap):9.2e} "
              f"{np.nanmax(gap):9.2e} {np.mean(np.abs(gap) <= 1e-3):7.0%} {vs:12.2e}")
    print("foolbox DDN: not included (foolbox not installed in this environment)")


if __name__ == "__main__":
    main()
