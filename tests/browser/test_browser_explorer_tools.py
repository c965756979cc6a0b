"""The explorer's selection toolkit in JupyterLab (smoke mode, notebook 02), with real keys, drags and clicks:
type a search and press Enter, draw a lasso on an embedding with the mouse, isolate it, click a sample and
press "certify". Each must highlight / show exactly what the session computes, with the layout still fitting
at 1280x800 with the file browser open."""

from __future__ import annotations

import re

import pytest
from labharness import RUN_ALL_S
from layout_checks import assert_fits

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

NB = "notebooks/02_mnist_explorer.ipynb"
MARK_TRACES = {"highlight", "selected"}


def _inside(poly, x, y) -> bool:
    """Even-odd rule: is pixel (x, y) inside polygon ``poly`` (list of (x, y))?"""
    hit = False
    for (x1, y1), (x2, y2) in zip(poly, poly[1:] + poly[:1]):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            hit = not hit
    return hit


def _status(s) -> str:
    return " ".join(s.page.locator(".marginlab-app .widget-html").all_inner_texts())


def _highlighted_cds(s, emb) -> set:
    """customdata (explored rows) of the data points under the highlight rings (same pixels)."""
    plot = s.plot(emb)
    rings = [(round(p["px"]), round(p["py"])) for p in next(t for t in plot["traces"]
                                                         if t["name"] == "highlight")["points"]]
    data = [p for t in plot["traces"] if t["name"] not in MARK_TRACES for p in t["points"]]
    return {p["cd"] for p in data if (round(p["px"]), round(p["py"])) in rings}


def test_search_lasso_and_certify(session):
    s = session
    s.page.set_viewport_size({"width": 1280, "height": 800})
    s.open_notebook(NB)
    s.page.evaluate("() => window.jupyterapp.commands.execute('filebrowser:activate')")
    s.run_all()
    emb = s.tag_plot("embedding", text=r"of .+ \(\d+ samples\)", timeout=RUN_ALL_S)
    s.wait_all_executed()

    # 1. a search typed in the box (Enter submits) rings the samples of class 3
    box = s.page.locator(".marginlab-search input")
    box.scroll_into_view_if_needed()
    box.fill("label:3")
    box.press("Enter")
    s.wait_for("search status", lambda _st: re.search(r"\d+ samples highlighted \(label:3\)", _status(s)), 60)
    n3 = int(re.search(r"(\d+) samples highlighted \(label:3\)", _status(s)).group(1))
    assert n3 > 0
    s.wait_plot(emb, "rings on the class-3 samples",
                lambda p: len(next(t for t in p["traces"] if t["name"] == "highlight")["points"]) == n3)
    s.screenshot("search")

    # 2. a lasso drawn with the mouse on the left embedding highlights exactly the points inside it
    s.page.locator(emb).first.scroll_into_view_if_needed()
    s.page.wait_for_timeout(300)
    plot = s.plot(emb)
    a = plot["area"]
    s.page.mouse.move(a["left"] + a["width"] / 2, a["top"] + a["height"] / 2)  # shows the modebar
    s.page.locator(f"{emb} .modebar-btn[data-val='lasso']").first.click()
    cx, cy = a["left"] + a["width"] * 0.45, a["top"] + a["height"] * 0.5
    w, h = a["width"] * 0.3, a["height"] * 0.35
    poly = [(cx - w, cy - h), (cx + w, cy - h), (cx + w, cy + h), (cx - w, cy + h)]
    want = {p["cd"] for t in plot["traces"] if t["name"] not in MARK_TRACES for p in t["points"]
            if _inside(poly, p["px"], p["py"])}
    assert len(want) >= 2, "the lasso should enclose some samples"
    s.page.mouse.move(*poly[0])
    s.page.mouse.down()
    for x, y in poly[1:] + poly[:1]:
        s.page.mouse.move(x, y, steps=8)
    s.page.mouse.up()
    s.wait_for("lasso status", lambda _st: f"{len(want)} samples highlighted (selection)" in _status(s), 60)
    s.wait_plot(emb, "rings on the lassoed samples", lambda _p: _highlighted_cds(s, emb) == want)
    s.screenshot("lasso")
    # ... and "isolate highlighted" (a real click on the checkbox) leaves only those samples drawn
    s.page.locator(".marginlab-app .widget-checkbox:has-text('isolate highlighted') input").first.click()
    s.wait_plot(emb, "only the lassoed samples drawn", lambda p: {
        pt["cd"] for t in p["traces"] if t["name"] not in MARK_TRACES for pt in t["points"]} == want)

    # 3. click a sample (back to zoom mode: a click on a point in lasso mode is a selection), then certify
    s.page.mouse.move(a["left"] + a["width"] / 2, a["top"] + a["height"] / 2)
    s.page.locator(f"{emb} .modebar-btn[data-val='zoom']").first.click()
    names = {t["name"] for t in s.plot(emb)["traces"]} - MARK_TRACES
    name, target = s.isolated_point(emb, names)
    target = s.click_trace_point(emb, name, target["i"])
    details = s.page.locator(".widget-html", has_text="margin / max margin")
    s.wait_for("details of the clicked sample",
               lambda _st: details.count() and f"(row {int(target['cd'])})" in details.first.inner_text(), 60)
    assert "not checked" in details.first.inner_text()
    assert f"nearest to row {int(target['cd'])}" in _status(s)  # the neighbours table followed the click
    nb = s.tag_plot("neighbours", text=r"^#\d+ \(\d\)<br>m=\d")
    s.wait_plot(nb, "5 neighbour images", lambda p: sum(
        t["type"] == "heatmap" and bool(t.get("zfinite")) for t in p["traces"]) == 5)
    s.page.locator(".marginlab-certify").first.click()
    s.wait_for("the certified bracket in the details",
               lambda _st: re.search(r"\[\d\.\d{4}, \d\.\d{4}\] (✓ certified|bracket only)",
                                     details.first.inner_text()), 120)
    lo, up = map(float, re.search(r"\[(\d\.\d{4}), (\d\.\d{4})\]", details.first.inner_text()).groups())
    assert lo <= up
    s.check_health()
    assert_fits(s, "lab-1280x800-tools")
