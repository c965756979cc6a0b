"""Framework overhead of ``marginlab.train.fit`` vs a minimal hand-written PyTorch loop.

Same data (MNIST offline training subset, or full MNIST when cached), same model (784-H-10 ReLU MLP, same
initial weights), same minibatches (same permutation), plain SGD with momentum; both keep the data on the
device and gather minibatches by index. Runs are interleaved (A, B, A, B, ...) and the median per-epoch time
is compared. Prints the ratio fit / hand loop (target <= 1.10).

    python benchmarks/fit_overhead.py [--epochs 5] [--hidden 1000] [--repeats 3] [--device auto]
"""

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F

from marginlab.data import load_mnist
from marginlab.device import resolve_device
from marginlab.models import MLP
from marginlab.train import fit


def hand_loop(model, X, y, epochs, lr, batch_size, seed, device):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(X), generator=gen).to(device)
        for i in range(0, len(X), batch_size):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(model(X[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = resolve_device(args.device)
    train = load_mnist("train", download=False)
    print(f"data: {train.source}\ndevice: {device}, model 784-{args.hidden}-10, batch {args.batch_size}, "
          f"{args.epochs} epochs x {args.repeats} repeats")
    base = MLP((1, 28, 28), (args.hidden,), 10, seed=0)
    X, y = train.tensors(device)
    t_fit, t_hand = [], []
    for _ in range(args.repeats):
        m = copy.deepcopy(base).to(device)
        t0 = time.perf_counter()
        hand_loop(m, X, y, args.epochs, 0.01, args.batch_size, 0, device)
        t_hand.append(time.perf_counter() - t0)
        m = copy.deepcopy(base)
        t0 = time.perf_counter()
        fit(m, train, epochs=args.epochs, lr=0.01, batch_size=args.batch_size, seed=0, device=device,
            progress=False)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t_fit.append(time.perf_counter() - t0)
    hf, hh = statistics.median(t_fit), statistics.median(t_hand)
    print(f"hand loop: {hh / args.epochs:.3f} s/epoch   fit: {hf / args.epochs:.3f} s/epoch")
    print(f"ratio fit / hand loop = {hf / hh:.3f}  (target <= 1.10)")


if __name__ == "__main__":
    main()
