"""The playground in Voila app mode (the Binder "app" link): it renders and the interactions work.

Served by the same `jupyter lab` server through Voila's server extension, i.e. the very URL path
(`voila/render/notebooks/01_playground.ipynb`) that the README's Binder badge opens.
"""

from __future__ import annotations

import pytest
from labharness import RUN_ALL_S
from playground_checks import NB, check_add_point, check_click_point, check_play

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]


def test_playground_in_voila(session):
    try:
        import voila  # noqa: F401
    except ImportError:  # a missing dev dependency is a failure, not a skip
        pytest.fail(
            "voila is not installed: pip install voila (dev extra, binder/requirements.txt)", pytrace=False
        )
    s = session
    s.open_voila(NB)
    surface = s.tag_plot("surface", trace="regions", timeout=RUN_ALL_S)
    s.page.locator(f"{surface} .main-svg").first.wait_for(state="visible")
    s.timings.mark("first_plot")
    s.check_health()  # a cell that raised shows as a traceback in the page (show_tracebacks=True)
    s.screenshot("rendered")

    row = check_click_point(s, surface)
    s.screenshot(f"clicked-train-{row}")
    check_add_point(s, surface)
    check_play(s)
    s.screenshot("played")
    s.check_health()
