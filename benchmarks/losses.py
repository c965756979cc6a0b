"""Per-epoch cost of the margin losses relative to cross-entropy (seed 004 §4.1: ~20% extra on CIFAR-10).

Same data (MNIST offline training subset, or full MNIST when cached), same models (784-H-10 ReLU MLP and
CNN(k)), same initial weights and minibatches; SGD with momentum. Losses: cross-entropy; large-margin (l2,
all 9 other classes, max aggregation, denominator gradient stopped as in the paper) on the input layer, and
on all layers (input, every hidden representation, output), and on the input with only the top other class
(seed 004's ImageNet setting); ODN on the input layer. Runs are interleaved
(CE, LM-input, LM-all, ODN, CE, ...) and the median epoch time is compared. Prints time / cross-entropy time.

    python benchmarks/losses.py [--quick] [--n 5000] [--hidden 500] [--k 16] [--repeats 3] [--threads 1]
                                [--device auto]
"""

import argparse
import copy
import statistics
import time

import torch

from marginlab.data import load_mnist
from marginlab.device import resolve_device
from marginlab.models import CNN, MLP
from marginlab.train import Trainer

LOSSES = {
    "cross_entropy": ("cross_entropy", {}),
    "large_margin(input)": ("large_margin", {"gamma": 1.0, "layers": (0,), "clip": 10.0}),
    "large_margin(all layers)": ("large_margin", {"gamma": 1.0, "layers": "all", "clip": 10.0}),
    "large_margin(input, top-1)": ("large_margin", {"gamma": 1.0, "layers": (0,), "top_k": 1, "clip": 10.0}),
    "odn(input)": ("odn", {"r": 1.0, "theta": 0.2, "mu": 0.1}),
}


def epoch_time(model, train, loss, options, batch_size, device):
    trainer = Trainer(copy.deepcopy(model), train, loss=loss, loss_options=options, optimizer="sgd", lr=0.01,
                      batch_size=batch_size, seed=0, device=device)
    t0 = time.perf_counter()
    trainer.run_epoch()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1,000 images, MLP 784-256-10, CNN(8), 2 repeats")
    ap.add_argument("--n", type=int, default=5000, help="training images")
    ap.add_argument("--hidden", type=int, default=500)
    ap.add_argument("--k", type=int, default=16, help="CNN width knob")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default 1: stable on a shared machine; 0 = torch's choice)")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    if args.quick:
        args.n, args.hidden, args.k, args.repeats = 1000, 256, 8, 2
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    train = load_mnist("train", download=False)
    train = train.subset(range(min(args.n, len(train))))
    models = {f"MLP 784-{args.hidden}-10": MLP((1, 28, 28), (args.hidden,), 10, seed=0),
              f"CNN(k={args.k})": CNN(args.k, seed=0)}
    print(f"data: {len(train)} images ({train.source})\ndevice: {device}, batch {args.batch_size}, "
          f"{args.repeats} repeats, threads {torch.get_num_threads()}")
    for mname, model in models.items():
        times = {name: [] for name in LOSSES}
        epoch_time(model, train.subset(range(256)), "cross_entropy", {}, args.batch_size, device)  # warm-up
        for _ in range(args.repeats):
            for name, (loss, opts) in LOSSES.items():
                times[name].append(epoch_time(model, train, loss, opts, args.batch_size, device))
        base = statistics.median(times["cross_entropy"])
        print(f"\n{mname}")
        for name, ts in times.items():
            med = statistics.median(ts)
            print(f"  {name:26s} {med:8.3f} s/epoch   x{med / base:5.2f} vs cross-entropy")


if __name__ == "__main__":
    main()
