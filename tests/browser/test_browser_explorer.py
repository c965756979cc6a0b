"""MNIST explorer in JupyterLab (smoke mode): click a point in an embedding, see the sample, boundary and
perturbation images of *that* point."""

from __future__ import annotations

import re

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(480)]

NB = "notebooks/02_mnist_explorer.ipynb"
# Data traces of an embedding figure; the last two ("highlight", "selected") are marks, not samples.
MARK_TRACES = {"highlight", "selected"}


def _isolated_point(plot: dict, exclude_row) -> dict:
    """The sample point farthest from any other point (so the click cannot land on a neighbour)."""
    pts = [p for t in plot["traces"] if t["name"] not in MARK_TRACES for p in t["points"]]
    assert len(pts) >= 2, f"the embedding shows {len(pts)} points"

    def gap(p):
        return min((p["px"] - q["px"]) ** 2 + (p["py"] - q["py"]) ** 2 for q in pts if q is not p)

    candidates = [p for p in pts if p["cd"] is not None and p["cd"] != exclude_row]
    return max(candidates, key=gap)


def test_explorer_click_shows_images(session, lab, measure):
    s = session
    s.open_notebook(NB)
    s.run_all()
    s.wait_visible(".js-plotly-plot .main-svg", "first plotly figure")
    s.timings.mark("first_plot")
    # The embedding views get their data when the app's run() finishes (title "<METHOD> of <layer> (N samples)").
    emb = s.tag_plot("embedding", text=r"of .+ \(\d+ samples\)")
    s.timings.mark("embedding_plot")
    s.wait_all_executed()
    images = s.tag_plot("images", text=r"^perturbation")
    s.screenshot("executed")

    details = s.page.locator(".widget-html", has_text="margin / max margin")
    before = s.plot(images)["annotations"]
    # The notebook's last cell selects row 0: click another sample so the update is ours.
    target = _isolated_point(s.plot(emb), exclude_row=0)
    s.click_trace_point(emb, next(t["name"] for t in s.plot(emb)["traces"]
                                  if any(p["cd"] == target["cd"] and p["i"] == target["i"] for p in t["points"])),
                        target["i"])
    row = int(target["cd"])
    s.wait_for(f"details of clicked row {row}",
               lambda _st: details.count() and f"(row {row})" in details.first.inner_text(), 60)
    s.timings.mark("details_shown")

    def images_updated(plot):
        ann = plot["annotations"]
        heatmaps = [t for t in plot["traces"] if t["type"] == "heatmap"]
        return (ann != before and len(heatmaps) >= 3 and all(t.get("zfinite") for t in heatmaps[:3])
                and re.match(r"sample #\d+", ann[0]) and ann[1].startswith("boundary point")
                and ann[2].startswith("perturbation"))

    s.wait_plot(images, "sample / boundary point / perturbation images of the clicked sample", images_updated)
    sel = s.trace(emb, "selected")["points"]
    assert len(sel) == 1 and abs(sel[0]["px"] - target["px"]) < 2 and abs(sel[0]["py"] - target["py"]) < 2, (
        f"the 'selected' mark should sit on the clicked sample at ({target['px']:.0f}, {target['py']:.0f}), "
        f"got {sel}"
    )
    s.page.locator(images).scroll_into_view_if_needed()
    s.screenshot("clicked")
    s.check_health()  # no error output, widget error or app error message after the interaction
    measure.update(s.timings.marks, **lab.kernel_memory())
