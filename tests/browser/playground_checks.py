"""The playground interactions checked in the browser, shared by the JupyterLab and the Voila tests."""

from __future__ import annotations

import re

NB = "notebooks/01_playground.ipynb"
SAMPLE_TRACES = ("train", "train (corrupted)")
EPOCH = re.compile(r"epoch (\d+)")


def n_train_points(plot: dict) -> int:
    return sum(len(t["points"]) for t in plot["traces"] if t["name"] in SAMPLE_TRACES)


def epoch_of(session) -> int | None:
    m = EPOCH.search(session.text(".widget-html:has-text('epoch')"))
    return int(m.group(1)) if m else None


def check_click_point(s, surface: str) -> int:
    """Click a training sample: the boundary-point marker, the segment and the margin text appear for it."""
    if not s.trace(surface, "train")["points"]:
        # Seen when a FigureWidget was updated before its first display: the view shows the stale
        # construction-time state (empty traces), although Python holds the data.
        s.fail(f"the class-region map {surface} draws no training points (stale figure state?)")
    # The notebook's smoke cell selected train row 0: click another row so the update is ours.
    name, p = s.isolated_point(surface, {"train"}, exclude_cd={0})
    p = s.click_trace_point(surface, name, p["i"])
    row = int(p["cd"])
    s.wait_for(
        f"margin text for train #{row}",
        lambda _st: f"train #{row}" in (info := s.text(".marginlab-info")) and "margin" in info,
        60,
    )

    def drawn(plot):
        named = {t["name"]: t for t in plot["traces"]}
        sel = named["selected"]["points"]
        return (
            len(named["boundary point"]["points"]) == 1
            and len(named["segment"]["points"]) >= 2
            and len(sel) == 1
            and abs(sel[0]["px"] - p["px"]) < 2
            and abs(sel[0]["py"] - p["py"]) < 2
        )

    s.wait_plot(surface, f"boundary point + segment of train #{row}", drawn)
    info = s.text(".marginlab-info")
    assert re.search(r"margin \d+\.\d+", info), f"the margin text shows no number: {info!r}"
    return row


def check_add_point(s, surface: str) -> None:
    """Click empty space: one training point is added there."""
    before = n_train_points(s.plot(surface))
    s.click_empty(surface)
    s.wait_plot(
        surface, f"a training point added (had {before})", lambda plot: n_train_points(plot) == before + 1
    )
    s.wait_for(
        "the 'Added a class-k point' note",
        lambda _st: s.page.locator(".widget-html", has_text=f"{before + 1} training samples").count(),
        30,
    )


def check_play(s, timeout: float = 90) -> None:
    """Press play: the epoch counter advances (training runs from the Play widget's ticks)."""
    e0 = epoch_of(s)
    assert e0 is not None, "no 'epoch N' counter in the app"
    s.page.locator(".widget-play button").first.click()
    s.wait_for(f"epoch counter advancing past {e0}", lambda _st: (epoch_of(s) or -1) > e0, timeout)
    s.timings.mark("epoch_advanced")
    # Pause, so the kernel is quiet when the server stops (the second Play button is pause).
    s.page.locator(".widget-play button").nth(1).click()
