"""Start-up of the playground in a fresh kernel-like process: import + first app, as Voila pays it on every
page load (issue #16). Each arm is a fresh Python process; arms alternate, so a busy machine slows both.

  * eager nbformat: nbformat imported first, as plotly's FigureWidget did before marginlab deferred it
    (marginlab/widgets/_plotly.py): what every app start cost before;
  * now: the app as notebook 01 builds it (``Playground.open(n_samples=300)``).

For each arm it prints the median wall time and the ratio, then where the time of the current start goes
(top-level imports from ``python -X importtime``, the app's construction with everything imported, and a
second app).

    python benchmarks/startup.py [--runs 3] [--n-samples 300]
"""

import argparse
import os
import statistics
import subprocess
import sys

APP = "from marginlab.widgets import Playground\napp = Playground.open(n_samples={n})\n"
TIMED = ("import time, sys\nt = time.perf_counter()\n{pre}" + APP
         + "print(time.perf_counter() - t, 'jsonschema' in sys.modules)\n")


def run(code: str) -> str:
    env = {**os.environ, "QUERY_STRING": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return out.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--n-samples", type=int, default=300)
    args = ap.parse_args()
    arms = {"eager nbformat (before)": "import nbformat\n", "now": ""}
    times = {k: [] for k in arms}
    for _ in range(args.runs):
        for name, pre in arms.items():
            secs, schema = run(TIMED.format(pre=pre, n=args.n_samples)).split()
            times[name].append(float(secs))
            assert (schema == "True") == bool(pre), f"{name}: jsonschema imported = {schema}"
    print(f"playground start in a fresh process (import + Playground.open(n_samples={args.n_samples})), "
          f"{args.runs} runs per arm, load average {os.getloadavg()[0]:.1f}")
    for name, ts in times.items():
        runs = ", ".join(f"{t:.2f}" for t in ts)
        print(f"  {name:<26} median {statistics.median(ts):5.2f} s   runs {runs}")
    before, now = (statistics.median(ts) for ts in times.values())
    print(f"  ratio before / now: {before / now:.2f}x ({before - now:.2f} s less per start)")

    # where the time of one start goes now
    code = ("import time\nt0 = time.perf_counter()\n" + APP.format(n=args.n_samples)
            + "t1 = time.perf_counter()\n" + APP.format(n=args.n_samples)
            + "print(t1 - t0, time.perf_counter() - t1)\n")
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                          env={**os.environ, "QUERY_STRING": ""}, check=True)
    first, second = map(float, proc.stdout.split())
    top = []
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[2].startswith(" ") and not parts[2].startswith("  "):
            try:
                top.append((int(parts[1]) / 1e6, parts[2].strip()))
            except ValueError:
                pass
    print(f"\none start now: {first:.2f} s (under -X importtime); a second app in the same process: "
          f"{second:.2f} s")
    print("  largest top-level imports: " + ", ".join(f"{m} {s:.2f} s" for s, m in sorted(top)[-6:][::-1]))


if __name__ == "__main__":
    main()
