"""2-D playground in JupyterLab (smoke mode): click a training point, click empty space, press play.

One test with three checked steps rather than three tests: each would re-start the server, the kernel and the
notebook (~30 s on 2 cores) for no extra coverage, and the suite must stay within a few minutes.
"""

from __future__ import annotations

import pytest
from labharness import RUN_ALL_S
from playground_checks import NB, check_add_point, check_click_point, check_play

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]


def test_playground_in_jupyterlab(session):
    s = session
    s.open_notebook(NB)
    s.run_all()
    surface = s.tag_plot("surface", trace="regions", timeout=RUN_ALL_S)
    s.page.locator(f"{surface} .main-svg").first.wait_for(state="visible")
    s.timings.mark("first_plot")
    s.wait_all_executed()
    s.screenshot("executed")

    row = check_click_point(s, surface)
    s.screenshot(f"clicked-train-{row}")
    check_add_point(s, surface)
    s.screenshot("added-point")
    check_play(s)
    s.screenshot("played")
    s.check_health()
