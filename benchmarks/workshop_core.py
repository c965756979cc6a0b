"""Costs of the workshop features' numeric core (issue 18), measured side by side in one run on the CPU.

  * point edit: margins after adding one point with only the stale row re-solved (``update_margins``) vs a
    full re-solve of every train and test margin (what a click cost before): ratio full / update;
  * L1 + L2 penalty: Trainer steps with both rates on vs off (same model, data, batches): ratio on / off
    (target <= 1.25: the penalty is one pass over the weights per step);
  * hidden-layer view per Play tick: a layer's coordinates of the data, the tail's surface on the grid and the
    per-unit heatmaps vs the grid logits a tick computes anyway: the extra time as a ratio.

    python benchmarks/workshop_core.py [--n 400] [--hidden 16,16] [--grid 60] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def _median_time(fn, repeats):
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main():
    from marginlab.analysis.editing import update_margins
    from marginlab.analysis.representation import LayerView, unit_heatmaps
    from marginlab.data import add_points, load_toy
    from marginlab.device import torch_threads
    from marginlab.margins import compute_margins
    from marginlab.models import MLP
    from marginlab.train import Trainer
    from marginlab.viz.common import make_grid

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--hidden", default="16,16")
    ap.add_argument("--grid", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    hidden = tuple(int(h) for h in args.hidden.split(","))
    with torch_threads(1):
        train, test = load_toy("moons", args.n, noise=0.15, seed=0)
        model = MLP((2,), hidden, 2, seed=0)
        Trainer(model, train, lr=0.1, batch_size=32, device="cpu").step(300)
        model.eval()
        print(f"moons: {len(train)} train + {len(test)} test, MLP 2-{'-'.join(map(str, hidden))}-2, "
              f"grid {args.grid}x{args.grid}, 1 torch thread, median of {args.repeats}")

        # point edit
        X = np.concatenate([train.X, test.X])
        y = np.concatenate([train.y, test.y])
        old = compute_margins(model, X, y=y, signed=True)
        e = add_points(train, [[0.3, 0.2]], 1)
        Xn, yn = np.concatenate([e.dataset.X, test.X]), np.concatenate([e.dataset.y, test.y])
        t_full = _median_time(lambda: compute_margins(model, Xn, y=yn, signed=True), args.repeats)
        t_upd = _median_time(lambda: update_margins(model, old.subset(np.arange(len(train))), e, signed=True),
                             args.repeats)
        print(f"point edit: full re-solve {t_full * 1e3:.0f} ms, stale rows only {t_upd * 1e3:.1f} ms, "
              f"ratio full / update = {t_full / t_upd:.0f}")

        # penalty overhead (interleaved)
        on, off = [], []
        for _ in range(args.repeats):
            for rates, bucket in (({"l1": 1e-3, "l2": 1e-3}, on), ({}, off)):
                net = MLP((2,), hidden, 2, seed=0)
                tr = Trainer(net, train, lr=0.05, batch_size=10, device="cpu", **rates)
                t0 = time.perf_counter()
                tr.step(200)
                bucket.append(time.perf_counter() - t0)
        r = statistics.median(on) / statistics.median(off)
        print(f"penalty: {statistics.median(off) / 200 * 1e3:.2f} ms/step off, "
              f"{statistics.median(on) / 200 * 1e3:.2f} ms/step on, ratio on / off = {r:.2f} "
              "(target <= 1.25)")

        # hidden-layer view per tick
        grid = make_grid(X, resolution=args.grid)
        pts = torch.as_tensor(grid.points)

        def base():
            with torch.no_grad():
                model(pts)

        view = LayerView(model, 1).fit(train.X)

        def extra():
            U = view.transform(X)
            g = make_grid(U, resolution=args.grid)
            view.surface_logits(g.points)
            unit_heatmaps(model, 1, grid)

        t_base, t_extra = _median_time(base, args.repeats), _median_time(extra, args.repeats)
        print(f"layer view per tick: grid logits {t_base * 1e3:.1f} ms, layer-1 view + surface + "
              f"{hidden[0]} heatmaps {t_extra * 1e3:.1f} ms, ratio = {t_extra / t_base:.1f}")


if __name__ == "__main__":
    main()
