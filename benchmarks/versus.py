"""The batched solver's speed against an earlier revision of marginlab, measured in one run.

Both versions solve the same 50 MNIST test samples on the same trained MLPs (784-256-256-10 tanh and ReLU,
784-1000-10 ReLU: the net of ``benchmarks/margins.py``), each in its own process with one torch thread,
alternating ``--rounds`` times so that machine load hits both alike. The earlier revision is checked out
into a temporary git worktree. Prints per net the median ms/sample of each and the ratio now / then, and
the mean margins (the two should agree; the newer may be lower where it finds nearer points).

    python benchmarks/versus.py --rev f16a01b          # the revision before "verified means verified"
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NETS = [((256, 256), "tanh"), ((256, 256), "relu"), ((1000,), "relu")]

CHILD = r"""
import json, sys, time, torch
torch.set_num_threads(1)
from marginlab.data import load_mnist
from marginlab.margins import compute_margins
from marginlab.models.mlp import MLP
cache, nets, out = sys.argv[1], json.loads(sys.argv[2]), {}
X = load_mnist("test", flatten=True).X[:50]
for widths, act in nets:
    m = MLP((784,), widths, 10, activation=act, seed=0)
    m.load_state_dict(torch.load(f"{cache}/mlp_{'-'.join(map(str, widths))}_{act}.pt"))
    m.eval()
    compute_margins(m, X[:2], method="batched")
    t = time.perf_counter()
    r = compute_margins(m, X, method="batched")
    out[f"784-{'-'.join(map(str, widths))}-10 {act}"] = ((time.perf_counter() - t) / len(X) * 1e3,
                                                         float(r.margin.mean()))
print(json.dumps(out))
"""


def train(cache):
    """The nets, trained once on the bundled training subset (3 epochs of Adam), saved for both versions."""
    import torch

    from marginlab.data import load_mnist
    from marginlab.models.mlp import MLP
    from marginlab.train.fit import fit

    tr = load_mnist("train", flatten=True)
    for widths, act in NETS:
        m = MLP((784,), widths, 10, activation=act, seed=0)
        fit(m, tr, epochs=3, lr=1e-3, optimizer="adam", batch_size=128, progress=False, device="cpu")
        torch.save(m.state_dict(), f"{cache}/mlp_{'-'.join(map(str, widths))}_{act}.pt")


def run(src, cache):
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", CHILD, cache, json.dumps(NETS)], env=env, capture_output=True,
                         text=True, cwd=tempfile.gettempdir())
    if out.returncode:
        raise SystemExit(f"the run with marginlab from {src} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", default="f16a01b", help="earlier git revision (default f16a01b)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating runs of each version (default 3)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), a.rev], check=True,
                       capture_output=True)
        try:
            train(tmp)
            runs = {"now": [], "then": []}
            for _ in range(a.rounds):
                runs["then"].append(run(old, tmp))
                runs["now"].append(run(ROOT, tmp))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)],
                           capture_output=True)
    import numpy as np

    print(f"{'net':26s} {'then ms':>8s} {'now ms':>8s} {'now/then':>9s} {'mean then':>10s} {'mean now':>10s}")
    for net in runs["now"][0]:
        t = [float(np.median([r[net][k] for r in runs[v]])) for v in ("then", "now") for k in (0, 1)]
        print(f"{net:26s} {t[0]:8.1f} {t[2]:8.1f} {t[2] / t[0]:9.2f} {t[1]:10.5f} {t[3]:10.5f}")


if __name__ == "__main__":
    main()
