"""notebooks/07_workshop.ipynb as the Binder "app" link opens it (Voila, smoke mode): every cell ran without
an error, the playgrounds and the explorer render, and an exercise's answer unfolds on a real click."""

from __future__ import annotations

import pytest
from labharness import RUN_ALL_S

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

NB = "notebooks/07_workshop.ipynb"


def test_workshop_in_voila(session):
    s = session
    s.page.set_viewport_size({"width": 1280, "height": 800})
    s.open_voila(NB)
    s.tag_plot("surface", trace="regions", timeout=RUN_ALL_S)  # part 1's playground
    s.tag_plot("explorer", text=r"of .+ \(\d+ samples\)", timeout=RUN_ALL_S)  # part 3's explorer
    s.timings.mark("apps_rendered")
    s.check_health()  # a cell that raised shows as a traceback in the page
    answers = s.page.locator("details")
    assert answers.count() == 5, f"one folded answer per part, got {answers.count()}"
    first = answers.first
    text = first.locator("li").first
    assert not text.is_visible(), "answers start folded"
    first.locator("summary").scroll_into_view_if_needed()
    first.locator("summary").click()
    text.wait_for(state="visible", timeout=10_000)
    assert "moons interlock" in text.inner_text()
    s.screenshot("answer-unfolded")
    s.check_health()
