"""MNIST explorer in JupyterLab (smoke mode): click a point in an embedding, see the sample, boundary and
perturbation images of *that* point; the layout fits JupyterLab at 1280x800 (file browser open) and
1920x1080, and the copied link opens the same setup in Voila at 1024x768."""

from __future__ import annotations

import re

import pytest
from labharness import RUN_ALL_S
from layout_checks import assert_fits, copied_link, open_in_voila

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

NB = "notebooks/02_mnist_explorer.ipynb"
# Data traces of an embedding figure: all but the two marks "highlight" and "selected".
MARK_TRACES = {"highlight", "selected"}


def test_explorer_click_shows_images(session):
    s = session
    s.page.set_viewport_size({"width": 1280, "height": 800})
    s.open_notebook(NB)
    s.page.evaluate("() => window.jupyterapp.commands.execute('filebrowser:activate')")
    s.run_all()
    # The app cell trains and solves before it displays anything (run=True): bound the wait by RUN_ALL_S.
    s.wait_visible(".js-plotly-plot .main-svg", "first plotly figure", timeout=RUN_ALL_S)
    s.timings.mark("first_plot")
    # The embeddings get their data when the app's run() ends (title "<METHOD> of <layer> (N samples)").
    emb = s.tag_plot("embedding", text=r"of .+ \(\d+ samples\)", timeout=RUN_ALL_S)
    s.timings.mark("embedding_plot")
    s.wait_all_executed()
    images = s.tag_plot("images", text=r"^perturbation")
    s.page.locator(emb).first.scroll_into_view_if_needed()
    assert_fits(s, "lab-1280x800")

    details = s.page.locator(".widget-html", has_text="margin / max margin")
    before = s.plot(images)["annotations"]
    # The notebook's last cell selects row 0: click another sample so the update is ours.
    names = {t["name"] for t in s.plot(emb)["traces"]} - MARK_TRACES
    name, target = s.isolated_point(emb, names, exclude_cd={0})
    target = s.click_trace_point(emb, name, target["i"])
    row = int(target["cd"])
    s.wait_for(
        f"details of clicked row {row}",
        lambda _st: details.count() and f"(row {row})" in details.first.inner_text(),
        60,
    )
    s.timings.mark("details_shown")

    def images_updated(plot):
        ann = plot["annotations"]
        heatmaps = [t for t in plot["traces"] if t["type"] == "heatmap"]
        return (
            ann != before
            and len(heatmaps) >= 3
            and all(t.get("zfinite") for t in heatmaps[:3])
            and re.match(r"sample #\d+", ann[0])
            and ann[1].startswith("boundary point")
            and ann[2].startswith("perturbation")
        )

    s.wait_plot(images, "sample / boundary point / perturbation images of the clicked sample", images_updated)
    sel = s.trace(emb, "selected")["points"]
    assert len(sel) == 1 and abs(sel[0]["px"] - target["px"]) < 2 and abs(sel[0]["py"] - target["py"]) < 2, (
        f"the 'selected' mark should sit on the clicked sample at ({target['px']:.0f}, {target['py']:.0f}), "
        f"got {sel}"
    )
    s.page.locator(images).scroll_into_view_if_needed()
    s.screenshot("clicked")
    s.check_health()  # no error output, widget error or app error message after the interaction
    s.page.set_viewport_size({"width": 1920, "height": 1080})
    assert_fits(s, "lab-1920x1080")

    # the copied link opens the same setup (from the cache) in Voila on a small screen
    url = copied_link(s)
    assert "/voila/render/notebooks/02_mnist_explorer.ipynb?state=" in url, url
    v = open_in_voila(s, url)
    v.tag_plot("embedding", text=r"of .+ \(\d+ samples\)", timeout=RUN_ALL_S)
    v.check_health()
    v.page.locator(".widget-html", has_text="from cache: model, margins").first.wait_for(timeout=60_000)
    assert_fits(v, "voila-1024x768")
