"""Fixtures for the real-browser tests (marker ``browser``): Chromium via Playwright, one JupyterLab per test.

Each test gets its own server (hence a fresh kernel, settings and workspace), stopped afterwards, and its
own browser context. The only reason to skip is a missing /usr/bin/chromium; a missing Playwright is an error,
because CI installs both.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from labharness import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO,
    BrowserSession,
    LabServer,
    chromium_missing_reason,
)

HERE = Path(__file__).resolve().parent
_MEASUREMENTS: dict[str, dict] = {}


def pytest_collection_modifyitems(config, items):
    reason = chromium_missing_reason()
    for item in items:
        if HERE not in Path(item.fspath).resolve().parents:
            continue
        item.add_marker(
            pytest.mark.browser
        )  # every test here is a browser test, even if it forgets the marker
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


def pytest_terminal_summary(terminalreporter):
    if not _MEASUREMENTS:
        return
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "measurements.json"
    path.write_text(json.dumps(_MEASUREMENTS, indent=2))
    terminalreporter.section("browser measurements")
    for name, m in _MEASUREMENTS.items():
        terminalreporter.write_line(f"{name}: {json.dumps(m)}")
    terminalreporter.write_line(f"(written to {path.relative_to(REPO)})")


@pytest.fixture(scope="session")
def chromium():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # CI installs the dev extra; a missing package is a real failure, not a skip
        pytest.fail(
            f"playwright is not importable ({exc}); install it: pip install playwright", pytrace=False
        )
    with sync_playwright() as pw:
        # executable_path: use Debian's Chromium, never a Playwright-downloaded browser.
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _notebook_hashes() -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((REPO / "notebooks").glob("*.ipynb"))
    }


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server rooted at the checkout, private dirs under tmp_path, stopped after the test."""
    before = _notebook_hashes()
    server = LabServer(REPO, tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
    # Only notebooks that existed before: new ones may be added by someone working in the checkout meanwhile.
    after = _notebook_hashes()
    changed = [p for p, h in before.items() if after.get(p, h) != h]
    assert not changed, (
        f"committed notebooks changed during the browser test (JupyterLab saved them?): {changed}"
    )


@pytest.fixture
def session(chromium, lab, request):
    """A fresh browser context + page on `lab`; screenshot on any failure; context closed afterwards."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    s = BrowserSession(page, lab, request.node.name)
    try:
        yield s
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            s.screenshot("at-failure")
        # Numbers for the closing report, also for failed runs (the server is still up: `lab` stops later).
        _MEASUREMENTS[request.node.name] = {
            "outcome": rep.outcome if rep is not None else "not run",
            "seconds_since_page_load": s.timings.marks,
            **lab.kernel_memory(),
        }
        context.close()
