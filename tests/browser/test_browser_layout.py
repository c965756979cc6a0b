"""The playground's geometry at the sizes people use, and its shared link opened in Voila.

JupyterLab at 1280x800 with the file browser open (a laptop; the notebook's output is ~850 px wide) and at
1920x1080, then the "copy link" button's link opened in Voila at 1024x768: no slider track under 60 px, no
cut dropdown text, nothing wider than the notebook, no cut plot title / axis title / legend, and the link
opens the setup changed through the controls. One server and kernel for all three (each start costs ~30 s
here). Screenshots go to artifacts/browser/.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
from labharness import RUN_ALL_S
from layout_checks import assert_fits, copied_link, open_in_voila
from playground_checks import NB

from marginlab.sessions import decode_state

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]


def _link_state(s) -> dict:
    token = s.page.locator(".marginlab-copy-link").first.get_attribute("data-copy")
    return decode_state(parse_qs(token)["state"][0])


def test_playground_fits_and_its_link_opens_in_voila(session):
    s = session
    s.page.set_viewport_size({"width": 1280, "height": 800})
    s.open_notebook(NB)
    s.page.evaluate("() => window.jupyterapp.commands.execute('filebrowser:activate')")
    s.run_all()
    surface = s.tag_plot("surface", trace="regions", timeout=RUN_ALL_S)
    s.wait_all_executed()
    browser_px = s.page.evaluate("() => document.querySelector('#filebrowser').getBoundingClientRect().width")
    assert browser_px > 150, f"the file browser should be open (width {browser_px})"
    s.page.locator(surface).first.scroll_into_view_if_needed()
    assert_fits(s, "lab-1280x800")

    # a teacher changes the setup with the controls ...
    controls = s.page.locator(".marginlab-controls")
    assert not controls.locator(".widget-slider:has-text('classes')").is_visible()  # moons: two classes
    controls.locator(".widget-dropdown:has-text('dataset') select").select_option(label="spirals")
    hidden = controls.locator(".widget-text:has-text('hidden widths') input")
    hidden.fill("4")
    hidden.press("Enter")
    s.wait_for("the link to carry the new setup", lambda _st: (
        (st := _link_state(s)["settings"])["dataset"] == "spirals" and st["hidden"] == "4"), 60)
    assert controls.locator(".widget-slider:has-text('classes')").is_visible()  # spirals: a setting now

    s.page.set_viewport_size({"width": 1920, "height": 1080})
    assert_fits(s, "lab-1920x1080")

    # ... copies the link (the button's own script, through the clipboard) ...
    url = copied_link(s)
    assert urlparse(url).path.endswith("/voila/render/notebooks/01_playground.ipynb"), url

    # ... and a student opens it in Voila on a small screen
    v = open_in_voila(s, url)
    page = v.page
    v.tag_plot("surface", trace="regions", timeout=RUN_ALL_S)
    v.check_health()
    app = page.locator(".marginlab-controls")
    assert app.locator(".widget-dropdown:has-text('dataset') select").input_value() == "spirals" or (
        app.locator(".widget-dropdown:has-text('dataset') option:checked").inner_text() == "spirals")
    assert app.locator(".widget-text:has-text('hidden widths') input").input_value() == "4"
    assert_fits(v, "voila-1024x768")
    v.check_health()
