"""What the playground's workshop features cost per user action (issue 18 items 1-4, issue 14 item 4), on the
CPU with one torch thread, on the default moons data (300 samples) and a 16, 16 MLP trained 300 steps:

  * the clicked sample's certificate: ReLU "proved global" (MIP) and tanh bracket (certify=True), per click,
    with the share proved and the median lower / upper ratio;
  * point edits (move, brush of 5, delete) against re-solving every margin;
  * the representation view of a 16-unit layer (PCA), the unit strip, and one A/B comparison tick.

    python benchmarks/workshop_apps.py [--clicks 20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def _ms(fn) -> float:
    t = time.perf_counter()
    fn()
    return 1000 * (time.perf_counter() - t)


def certificates(clicks: int) -> None:
    from marginlab.sessions import PlaygroundSession

    for act in ("relu", "tanh"):
        s = PlaygroundSession(background=False, hidden="16, 16", activation=act, device="cpu")
        s.step(300)
        s.refresh_margins()
        s.select("train", 0)  # first call imports the solver
        times, certs = [], []
        for r in range(1, clicks + 1):
            t = time.perf_counter()
            certs.append(s.select("train", r)["certificate"])
            times.append(1000 * (time.perf_counter() - t))
        proved = sum(c["kind"] == "proved" for c in certs)
        ratio = np.median([c["lower"] / c["upper"] for c in certs])
        print(f"{act}: certificate per click median {np.median(times):.0f} ms, max {max(times):.0f} ms; "
              f"proved global {proved}/{clicks}; median lower/upper {ratio:.2f}")


def edits_and_views() -> None:
    from marginlab.sessions import CompareSession, PlaygroundSession

    s = PlaygroundSession(background=False, hidden="16, 16", device="cpu")
    s.step(300)
    s.refresh_margins()
    full = _ms(s.refresh_margins)
    move = _ms(lambda: s.move_point(3, 0.2, 0.2))
    brush = _ms(lambda: s.brush(0.0, 0.5, 1))
    delete = _ms(lambda: s.delete_nearest(*s.train.X[10]))
    print(f"all {len(s.train) + len(s.test)} margins: {full:.0f} ms; move {move:.0f} ms (1 re-solved), brush "
          f"{brush:.0f} ms (5), delete {delete:.0f} ms (0)")
    s.update(representation=2)
    print(f"representation of layer 2 (16 units, PCA): {_ms(s.representation_view):.0f} ms; "
          f"unit strip: {_ms(lambda: s.unit_strip(1)):.0f} ms")
    c = CompareSession(a={"loss": "cross_entropy"}, b={"loss": "hinge"}, background=False, device="cpu")
    ticks = [_ms(c.tick) for _ in range(10)]
    print(f"A/B tick (both sides; margins inline every 5th tick): median {np.median(ticks):.0f} ms, "
          f"max {max(ticks):.0f} ms")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clicks", type=int, default=20)
    args = p.parse_args(argv)
    if args.clicks < 1:
        p.error("--clicks must be >= 1")
    torch.set_num_threads(1)
    certificates(args.clicks)
    edits_and_views()


if __name__ == "__main__":
    main()
