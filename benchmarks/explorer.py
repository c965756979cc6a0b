"""Benchmark of the MNIST margin explorer (issue #5).

Measures, in one process on the CPU:
  * UMAP and t-SNE (and PCA) of N MNIST training images (inputs), inside the running explorer (budget:
    UMAP of 5,000 samples <= 60 s on 2 cores); numba's one-off compilation is timed separately;
  * click -> details latency, with the sample's margins cached and not cached (solving all 9 other classes;
    budget <= 1 s);
  * resident memory of the running explorer holding N samples (Binder gives 1-2 GB);
  * reopening from the disk cache.

    python benchmarks/explorer.py                 # N = 5000 (the bundled training subset, no val split)
    python benchmarks/explorer.py --n 500 --quick # a smoke run
    python benchmarks/explorer.py --umap-in-kernel  # UMAP in the explorer's own process (more memory)
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


class PeakSampler:
    """Largest RSS of this process plus its children (the UMAP process), sampled every 50 ms in a thread:
    what a container's memory limit sees. (``ru_maxrss`` of children is useless here: Linux carries the
    parent's value over into a forked child.)"""

    def __init__(self, every: float = 0.05):
        import threading

        import psutil

        self.proc, self.every, self.peak_mb = psutil.Process(), every, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        import psutil

        while not self._stop.is_set():
            try:
                total = self.proc.memory_info().rss
                for c in self.proc.children(recursive=True):
                    try:
                        total += c.memory_info().rss
                    except psutil.Error:  # ended between listing and reading
                        pass
                self.peak_mb = max(self.peak_mb, total / 2**20)
            except psutil.Error:
                pass
            self._stop.wait(self.every)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_mb


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=5000, help="explored samples (and training images)")
    ap.add_argument("--hidden", default="256", help="hidden widths, e.g. 256 or 256,128")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--clicks", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="PCA views only (no UMAP/t-SNE)")
    ap.add_argument("--method", default="batched", help="margin method of the explorer run")
    ap.add_argument(
        "--click-method", default="batched", help="margin method a click on an unsolved sample uses"
    )
    ap.add_argument("--chunk", type=int, default=250, help="samples per margin chunk (memory vs speed)")
    ap.add_argument("--umap-in-kernel", action="store_true",
                    help="fit UMAP in the explorer's own process (umap_process=False): the memory comparison")
    ap.add_argument("--reopen", action="store_true", help=argparse.SUPPRESS)  # child: reopen from cache
    ap.add_argument("--cache", default=None, help="cache folder (default: a fresh temporary one)")
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    t0 = time.perf_counter()
    from marginlab.widgets.explorer import MarginExplorer

    import_s = time.perf_counter() - t0
    base_mb = rss_mb()
    cache = args.cache or tempfile.mkdtemp(prefix="marginlab-bench-")
    views = ("pca", "pca") if args.quick else ("umap", "tsne")
    if args.reopen:
        # before the numba warm-up below: a reopened explorer loads cached embeddings and never imports umap,
        # so compiling it here would add umap/numba/llvmlite (~200+ MB) to the reopened process's RSS
        return reopen(args, cache, views)
    sampler = PeakSampler()
    compile_s = float("nan")
    if not args.quick:
        from marginlab.embed import embed

        rng = np.random.default_rng(0)
        t0 = time.perf_counter()
        # in the kernel, numba compiles once per process; with umap_process every UMAP view pays this again
        # (a fresh process: start, imports, compilation), and nothing of it stays in this process
        embed(rng.normal(size=(200, 10)).astype(np.float32), "umap", isolate=not args.umap_in_kernel)
        compile_s = time.perf_counter() - t0

    settings = settings_of(args, cache, views)
    t0 = time.perf_counter()
    app = MarginExplorer(**settings)
    app.run()
    total_s = time.perf_counter() - t0
    if app.error:
        raise SystemExit(f"explorer failed: {app.error}")
    ses = app.session
    timings = dict(ses.timings)  # the PCA view below overwrites the right view's timing
    t0 = time.perf_counter()
    app.update_embedding(1, method="pca")
    pca_s = time.perf_counter() - t0

    rng = np.random.default_rng(1)
    picks = rng.choice(args.n, size=min(args.clicks, args.n), replace=False)
    cached, fresh = [], []
    ses.run_settings = ses.run_settings.replace(method=args.click_method)
    for r in picks:
        t0 = time.perf_counter()
        app.select(int(r))
        cached.append(time.perf_counter() - t0)
        ses.solved[r] = False  # forget this sample's margins: the next click re-solves all 9 classes
        t0 = time.perf_counter()
        app.select(int(r))
        fresh.append(time.perf_counter() - t0)
    if app.error:
        raise SystemExit(f"click failed: {app.error}")
    t0 = time.perf_counter()
    app.select_range(*np.nanquantile(ses.result.margin, [0.0, 0.1]))
    range_s = time.perf_counter() - t0
    run_mb = rss_mb()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    total_peak_mb = sampler.stop()  # before the reopening child below

    # reopening in a fresh process: its memory is that of a running explorer without the solver's peak
    child = subprocess.run(
        [sys.executable, __file__, "--reopen", *(argv or sys.argv[1:]), "--cache", cache],
        capture_output=True,
        text=True,
    )
    reopen_line = (child.stdout.strip().splitlines() or [child.stderr[-300:]])[-1]

    print(
        f"\nMNIST margin explorer benchmark: N = {args.n}, MLP 784-{args.hidden}-10, {args.epochs} epochs, "
        f"label corruption 0.2; torch threads {torch.get_num_threads()}, os.cpu_count() {os.cpu_count()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"  data: {ses.train_data.source[:90]}")
    rows = [
        ("import explorer (torch, plotly, widgets)", f"{import_s:.1f} s"),
        (
            "UMAP overhead: numba compilation"
            + ("" if args.umap_in_kernel else " + process start (per view)"),
            f"{compile_s:.1f} s",
        ),
        ("train model", f"{timings['model']:.1f} s"),
        (
            f"margins, {args.n} samples x 9 classes ({args.method})",
            f"{timings['margins']:.1f} s  ({int(ses.result.converged.sum())}/{args.n} verified)",
        ),
        (f"left view: {views[0]} of {args.n} inputs", f"{timings['embed0']:.1f} s"),
        (f"right view: {views[1]} of {args.n} inputs", f"{timings['embed1']:.1f} s"),
        (f"pca of {args.n} inputs", f"{pca_s:.2f} s"),
        ("whole first run (train + margins + 2 views + figures)", f"{total_s:.1f} s"),
        (
            "click -> details, margins cached (median / max)",
            f"{statistics.median(cached) * 1e3:.0f} / {max(cached) * 1e3:.0f} ms",
        ),
        (
            f"click -> details, solving 9 classes ({args.click_method}; median / max)",
            f"{statistics.median(fresh) * 1e3:.0f} / {max(fresh) * 1e3:.0f} ms",
        ),
        ("range selection -> highlight in both views", f"{range_s * 1e3:.0f} ms"),
        ("RSS after imports", f"{base_mb:.0f} MB"),
        ("RSS of the running explorer", f"{run_mb:.0f} MB"),
        ("peak RSS", f"{peak_mb:.0f} MB"),
        ("peak RSS of the explorer + its UMAP process together (sampled)", f"{total_peak_mb:.0f} MB"),
        ("reopened from the disk cache in a fresh process", reopen_line),
    ]
    w = max(len(a) for a, _ in rows)
    for a, b in rows:
        print(f"  {a:<{w}}  {b}")


def settings_of(args, cache, views):
    return dict(
        n_train=args.n,
        val_fraction=0.0,
        hidden=tuple(int(h) for h in args.hidden.split(",")),
        epochs=args.epochs,
        lr=0.05,
        corruption="label",
        fraction=0.2,
        n_samples=args.n,
        embeddings=views,
        cache_dir=cache,
        method=args.method,
        chunk_size=args.chunk,
        umap_process=not args.umap_in_kernel,
    )


def reopen(args, cache, views):
    t0 = time.perf_counter()
    from marginlab.widgets.explorer import MarginExplorer

    app = MarginExplorer(**settings_of(args, cache, views))
    app.run()
    app.select(0)
    s = time.perf_counter() - t0
    print(
        # (ru_maxrss is not reported here: Linux carries it over from the parent across fork/exec)
        f"{s:.1f} s incl. imports, from cache {app.session.from_cache}, RSS {rss_mb():.0f} MB"
    )


if __name__ == "__main__":
    main()
