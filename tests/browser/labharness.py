"""Harness for the real-browser tests: a throw-away JupyterLab server and a Playwright page that drives it.

Every wait is bounded and every failure says *why* (server never answered, kernel died, a cell raised, a
widget never rendered), with the server log tail and a screenshot, so a broken notebook fails in minutes with
a readable message instead of hanging until the global pytest timeout.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "artifacts" / "browser"
# One source of truth for the JupyterLab settings users get on Binder and the tests run under.
OVERRIDES = REPO / "binder" / "jupyterlab-overrides.json"

# Bounded waits in seconds: about 3x what was measured on 2 shared cores, so a slow CI runner still passes
# but a broken notebook fails long before pytest-timeout's 900 s.
SERVER_START_S = 60
KERNEL_READY_S = 90
RUN_ALL_S = 300
WIDGET_S = 90
UPDATE_S = 30

# Flags measured to work with Debian's Chromium in a root container without a GPU (see field notes).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--enable-unsafe-swiftshader",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

# Uncaught page errors known to be harmless (regexes); anything else fails the test.
# anywidget (plotly's FigureWidget runtime) rejects a model's `ready` promise on a fixed 2 s timer, also when
# loading the ~3.5 MB plotly.js ESM merely takes longer (a busy CI runner); the widget still renders when the
# load ends. Measured here with the page's CPU throttled 8x: all five explorer figures drew all their traces.
# The tests wait for the figures and their data themselves, so a widget that really fails still fails them.
IGNORED_PAGE_ERRORS: list[str] = [r"ResizeObserver loop", r"\[anywidget\] Failed to initialize model\."]

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lab_settings(workdir: Path) -> Path:
    """Write the app-settings dir the server is pointed at: Binder's overrides plus test-only ones."""
    overrides = json.loads(OVERRIDES.read_text())
    # Test-only: never write the executed notebook (outputs, widget state) back into the checkout.
    overrides.setdefault("@jupyterlab/docmanager-extension:plugin", {})["autosave"] = False
    settings = workdir / "app-settings"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "overrides.json").write_text(json.dumps(overrides, indent=2))
    return settings


class LabServer:
    """`jupyter lab` on 127.0.0.1: random token, private settings/workspaces/runtime dirs, a log file."""

    def __init__(self, root: Path, workdir: Path, env: dict[str, str] | None = None, extra_args=()):
        self.root = Path(root)
        self.workdir = Path(workdir)
        self.env_extra = dict(env or {})
        self.extra_args = list(extra_args)
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        self.log_path = self.workdir / "jupyter-lab.log"
        self.proc: subprocess.Popen | None = None
        self._kernel_pids: set[int] = set()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str, **query) -> str:
        q = "&".join([f"token={self.token}"] + [f"{k}={v}" if v != "" else k for k, v in query.items()])
        return f"{self.base}/{path.lstrip('/')}?{q}"

    def start(self) -> LabServer:
        settings = lab_settings(self.workdir)
        env = dict(os.environ)
        env.update(
            {
                # Private dirs: no user/CI state leaks in, nothing leaks out between tests.
                "JUPYTERLAB_SETTINGS_DIR": str(self.workdir / "user-settings"),
                "JUPYTERLAB_WORKSPACES_DIR": str(self.workdir / "workspaces"),
                "JUPYTER_RUNTIME_DIR": str(self.workdir / "runtime"),
                "MARGINLAB_SMOKE": "1",
                # A fresh cache per server: the explorer really trains and solves, and ~/.cache stays clean.
                "MARGINLAB_CACHE": str(self.workdir / "cache"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.env_extra)
        cmd = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",  # CI containers run as root
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--ServerApp.port_retries=0",  # fail loudly instead of silently moving to another port
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            f"--LabApp.app_settings_dir={settings}",
            "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: kernel state, commands
            "--LabApp.news_url=",
            # Voilà (a server extension) reports cell errors with their traceback instead of a bare notice.
            "--VoilaConfiguration.show_tracebacks=True",
            *self.extra_args,
        ]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            cmd, cwd=self.root, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"jupyter lab exited with code {self.proc.returncode} before answering.\n"
                    f"command: {' '.join(cmd)}\n--- server log ---\n{self.log_tail()}",
                    pytrace=False,
                )
            try:
                self.api("GET", "api/status")
                return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.3)
        self.stop()
        pytest.fail(
            f"jupyter lab did not answer on {self.base} within {SERVER_START_S} s.\n"
            f"--- server log ---\n{self.log_tail()}",
            pytrace=False,
        )

    def api(self, method: str, path: str, timeout: float = 5):
        req = urllib.request.Request(
            f"{self.base}/{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
        return json.loads(body) if body else None

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])

    def kernel_processes(self) -> list[psutil.Process]:
        """The server's ipykernel children (kernels run in their own session, so track them by pid)."""
        if self.proc is None:
            return []
        try:
            kids = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        out = []
        for p in kids:
            try:
                if "ipykernel" in " ".join(p.cmdline()):
                    out.append(p)
                    self._kernel_pids.add(p.pid)
            except psutil.Error:
                pass
        return out

    def dead_kernels(self) -> list[int]:
        """Pids of kernels seen earlier that are gone (killed by the OOM killer, crashed) while we run."""
        self.kernel_processes()
        dead = []
        for pid in self._kernel_pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    continue
            except psutil.NoSuchProcess:
                pass
            dead.append(pid)
        return dead

    def kernel_memory(self) -> dict[str, float]:
        """Memory of the (single) kernel in MiB: its RSS and peak RSS (VmHWM), and the RSS of the kernel with
        its worker processes (joblib/loky), the number that counts against Binder's 1-2 GB."""
        procs = self.kernel_processes()
        if not procs:
            return {}
        p = procs[-1]
        out = {"kernel_rss_mib": round(p.memory_info().rss / 2**20, 1)}
        try:
            for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    out["kernel_peak_rss_mib"] = round(int(line.split()[1]) / 1024, 1)
        except OSError:
            pass
        total = out["kernel_rss_mib"]
        workers = 0
        for c in p.children(recursive=True):
            try:
                total += c.memory_info().rss / 2**20
                workers += 1
            except psutil.Error:
                pass
        out["kernel_tree_rss_mib"] = round(total, 1)
        out["kernel_workers"] = workers
        return out

    def stop(self) -> None:
        if self.proc is None:
            return
        # Remember the kernels and their workers (joblib/loky) before the server goes: kernels run in their
        # own session, so a signal to the server's process group does not reach them.
        for k in self.kernel_processes():
            try:
                self._kernel_pids.update(c.pid for c in k.children(recursive=True))
            except psutil.Error:
                pass
        if self.proc.poll() is None:
            # SIGTERM lets jupyter_server shut its kernels down cleanly.
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        # Kernels live in their own sessions: kill any survivor by the pid we recorded.
        for pid in self._kernel_pids:
            try:
                psutil.Process(pid).kill()
            except psutil.Error:
                pass
        self._log.close()
        self.proc = None


# --- JavaScript run in the page -----------------------------------------------------------------------------

# marginlab's apps report callback errors in an HTML message widget instead of raising: the class
# `marginlab-error` (requested from the widget authors) or, until then, the inline styles they use today.
APP_ERROR_SELECTOR = (
    ".marginlab-error, [style*='color:#a40000;background:#fff0f0'], [style*='border-left:3px solid #a00']"
)

# State of the current notebook panel, read from JupyterLab's models (the toolbar's idle indicator is not
# reliable: it reports idle before the kernel is connected).
JS_NOTEBOOK_STATE = r"""
() => {
  const APP_ERROR_SELECTOR = "%s";
  const appErrors = Array.from(document.querySelectorAll(APP_ERROR_SELECTOR))
    .map(e => e.innerText.slice(0, 400));
  const widgetErrors = Array.from(document.querySelectorAll('.jupyter-widgets-error-widget'))
    .map(e => e.innerText.slice(0, 400));
  document.querySelectorAll('.jp-OutputArea-output').forEach(e => {
    const t = e.innerText || '';
    if (/Error (displaying|rendering) widget/.test(t)) widgetErrors.push(t.slice(0, 400));
  });
  const app = window.jupyterapp;
  if (!app || !app.shell) return {phase: 'no-app', appErrors: appErrors, widgetErrors: widgetErrors};
  const dialog = document.querySelector('.jp-Dialog');
  const dialogText = dialog ? dialog.innerText.slice(0, 600) : null;
  const w = app.shell.currentWidget;
  if (!w || !w.sessionContext || !w.content || !w.content.widgets) {
    return {phase: 'no-notebook', dialog: dialogText, appErrors: appErrors, widgetErrors: widgetErrors};
  }
  const sc = w.sessionContext;
  const k = sc.session ? sc.session.kernel : null;
  const cells = [], errors = [];
  w.content.widgets.forEach((c, i) => {
    const m = c.model;
    if (m.type !== 'code') return;
    if (!m.sharedModel.getSource().trim()) return;
    cells.push({i: i, count: m.executionCount, state: m.executionState || null});
    for (let j = 0; j < m.outputs.length; j++) {
      const o = m.outputs.get(j).toJSON();
      if (o.output_type === 'error') {
        errors.push({cell: i, ename: o.ename, evalue: o.evalue, traceback: (o.traceback || []).join('\n')});
      }
    }
  });
  return {
    phase: 'ok', path: w.context ? w.context.path : null, dialog: dialogText, appErrors: appErrors,
    kernel: k ? {status: k.status, connection: k.connectionStatus, id: k.id} : null,
    sessionReady: !!sc.isReady, cells: cells, errors: errors, widgetErrors: widgetErrors,
  };
}
"""

JS_NOTEBOOK_STATE = JS_NOTEBOOK_STATE.replace('"%s"', json.dumps(APP_ERROR_SELECTOR), 1)

# Page coordinates of the points of plotly scatter traces inside a FigureWidget, from the plot's own axes:
# Playwright's .click() on a marker times out (the drag layer covers it) and Scattergl has no DOM points.
JS_PLOTLY_POINTS = r"""
([sel]) => {
  const root = document.querySelector(sel);
  if (!root) return null;
  const gd = root.classList.contains('js-plotly-plot') ? root : root.querySelector('.js-plotly-plot');
  if (!gd || !gd._fullLayout || !gd._fullData) return null;
  const fl = gd._fullLayout;
  const svg = gd.querySelector('.main-svg').getBoundingClientRect();
  const area = {left: svg.left + fl._size.l, top: svg.top + fl._size.t,
                width: fl._size.w, height: fl._size.h};
  const traces = gd._fullData.map((t, ti) => {
    const out = {index: ti, name: t.name || '', type: t.type, visible: t.visible, mode: t.mode || '',
                 points: []};
    if (t.z) {  // heatmaps: shape and whether any finite value is drawn (an "empty" image panel has none)
      const rows = Array.from(t.z);
      out.zrows = rows.length;
      out.zfinite = rows.some(r => r && Array.from(r).some(v => v !== null && Number.isFinite(v)));
    }
    if (!(t.type === 'scatter' || t.type === 'scattergl') || !t.x || !t.y) return out;
    const xa = fl['xaxis' + (t.xaxis || 'x').slice(1)], ya = fl['yaxis' + (t.yaxis || 'y').slice(1)];
    for (let i = 0; i < t.x.length; i++) {
      const x = t.x[i], y = t.y[i];
      const bad = v => v === null || v === undefined || Number.isNaN(v);
      if (bad(x) || bad(y)) continue;
      out.points.push({i: i, x: x, y: y, cd: t.customdata ? t.customdata[i] : null,
        px: svg.left + xa._offset + xa.c2p(xa.d2c(x)), py: svg.top + ya._offset + ya.c2p(ya.d2c(y))});
    }
    return out;
  });
  const title = fl.title && fl.title.text ? fl.title.text : '';
  const annotations = (fl.annotations || []).map(a => a.text || '');
  return {area: area, traces: traces, title: title, annotations: annotations};
}
"""

# Give a test handle (data-mltest=TAG) to the first plotly figure inside `scope` that has a trace named
# `trace`, or whose title / an annotation matches `text`: the apps' figures share CSS classes or have none.
JS_TAG_PLOT = r"""
([scope, trace, text, tag, nth]) => {
  const re = text ? new RegExp(text) : null;
  let seen = 0;
  for (const gd of document.querySelectorAll(scope + ' .js-plotly-plot, ' + scope + '.js-plotly-plot')) {
    if (!gd._fullLayout || !gd._fullData) continue;
    const fl = gd._fullLayout;
    const texts = [(fl.title && fl.title.text) || ''].concat((fl.annotations || []).map(a => a.text || ''));
    const ok = (!trace || gd._fullData.some(t => t.name === trace)) && (!re || texts.some(t => re.test(t)));
    if (ok && seen++ === nth) { gd.setAttribute('data-mltest', tag); return true; }
  }
  return false;
}
"""


@dataclass
class Timings:
    marks: dict[str, float] = field(default_factory=dict)
    t0: float = field(default_factory=time.monotonic)

    def mark(self, name: str) -> float:
        self.marks[name] = round(time.monotonic() - self.t0, 2)
        return self.marks[name]


class BrowserSession:
    """One Playwright page on a LabServer, with health checks run inside every wait."""

    def __init__(self, page, server: LabServer, name: str):
        self.page = page
        self.server = server
        self.name = name
        self.console_errors: list[str] = []
        self.timings = Timings()
        self._shot = 0
        self.voila = False  # set by open_voila: adds Voila's own error notices to the health checks
        page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text[:300]))
        page.on("pageerror", self._on_pageerror)
        self.page_errors: list[str] = []

    def _on_pageerror(self, exc) -> None:
        text = str(exc)[:400]
        self.console_errors.append(f"pageerror: {text}")
        if not any(re.search(p, text) for p in IGNORED_PAGE_ERRORS):
            self.page_errors.append(text)

    # -- artifacts and failures --------------------------------------------------------------------------
    def screenshot(self, label: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self._shot += 1
        path = ARTIFACTS / f"{self.name}-{self._shot:02d}-{label}.png"
        try:
            self.page.screenshot(path=str(path), full_page=True, timeout=15_000)
        except Exception as exc:  # a screenshot must never mask the real failure
            path = Path(f"(screenshot failed: {exc})")
        return path

    def fail(self, msg: str) -> None:
        shot = self.screenshot("failure")
        extra = ""
        if self.console_errors:
            extra += "\n--- browser console errors (last 10) ---\n" + "\n".join(self.console_errors[-10:])
        extra += "\n--- server log (tail) ---\n" + self.server.log_tail(25)
        pytest.fail(f"[{self.name}] {msg}\nscreenshot: {shot}{extra}", pytrace=False)

    # -- JupyterLab ------------------------------------------------------------------------------------------
    def state(self) -> dict:
        try:
            return self.page.evaluate(JS_NOTEBOOK_STATE)
        except Exception as exc:  # page navigating or crashed
            return {"phase": f"evaluate-failed: {exc}"}

    def check_health(self, st: dict | None = None) -> dict:
        """Fail at once on a dead kernel, an error output, a widget error or a blocking dialog."""
        st = st or self.state()
        if st.get("errors"):
            e = st["errors"][0]
            tb = ANSI.sub("", e.get("traceback") or "")[-2500:]
            self.fail(f"cell {e['cell']} raised {e['ename']}: {e['evalue']}\n{tb}")
        if self.page_errors:
            # An uncaught exception in the page is how a widget that cannot draw shows up (e.g. plotly.js
            # throwing while plotting a FigureWidget): fail now rather than wait for a plot that never comes.
            self.fail(f"uncaught JavaScript error in the page: {self.page_errors[0]}")
        if st.get("appErrors"):
            self.fail("the app shows an error message: " + " | ".join(st["appErrors"]))
        if st.get("widgetErrors"):
            self.fail("a widget failed to render: " + " | ".join(st["widgetErrors"]))
        k = st.get("kernel") or {}
        if (
            k.get("status") in ("dead", "autorestarting", "restarting")
            or k.get("connection") == "disconnected"
        ):
            self.fail(
                f"the kernel died or restarted (status={k.get('status')}, connection={k.get('connection')}); "
                "out of memory? see the server log"
            )
        if self.server.proc is None or self.server.proc.poll() is not None:
            self.fail("the jupyter server exited during the test")
        dead = self.server.dead_kernels()
        if dead:
            self.fail(f"kernel process {dead} died (out of memory? crash?); see the server log")
        if self.voila:
            v = self.page.evaluate(JS_VOILA_STATE)
            if v["errors"]:
                self.fail("Voila page shows an error: " + " | ".join(v["errors"]))
        if st.get("dialog"):
            self.fail(f"a JupyterLab dialog blocks the page: {st['dialog']!r}")
        return st

    def wait_for(self, what: str, predicate, timeout: float, interval: float = 0.25):
        """Poll `predicate(state)` (truthy result returned) with health checks; bounded by `timeout`."""
        deadline = time.monotonic() + timeout
        st: dict = {}
        while True:
            st = self.check_health()
            got = predicate(st)
            if got:
                return got
            if time.monotonic() > deadline:
                summary = {k: st.get(k) for k in ("phase", "path", "kernel", "sessionReady")}
                pending = [c for c in st.get("cells", []) if c.get("count") is None]
                self.fail(
                    f"{what} not reached within {timeout:.0f} s; notebook state {summary}; "
                    f"{len(pending)} code cells not executed: {pending[:5]}"
                )
            self.page.wait_for_timeout(interval * 1000)

    def open_notebook(self, path: str) -> None:
        self.timings = Timings()
        self.page.goto(
            self.server.url(f"lab/tree/{path}", reset=""),
            wait_until="domcontentloaded",
            timeout=SERVER_START_S * 1000,
        )
        self.timings.mark("dom_loaded")

        def kernel_idle(st):
            k = st.get("kernel") or {}
            return (
                st.get("phase") == "ok"
                and st.get("path") == path
                and st.get("sessionReady")
                and k.get("status") == "idle"
                and k.get("connection") == "connected"
            )

        self.wait_for(f"kernel of {path} connected and idle", kernel_idle, KERNEL_READY_S)
        self.timings.mark("kernel_idle")

    def open_voila(self, path: str) -> None:
        """Open `path` in Voila app mode (the server extension: the URL Binder's Voila link uses)."""
        self.timings = Timings()
        self.voila = True
        self.page.goto(
            self.server.url(f"voila/render/{path}"), wait_until="domcontentloaded", timeout=RUN_ALL_S * 1000
        )  # Voila answers when the notebook has been executed
        self.timings.mark("dom_loaded")

    def run_all(self) -> None:
        """Clear stale outputs, then Run All without awaiting the command (its promise resolves late)."""
        self.page.evaluate("() => { window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs'); }")
        self.page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        self.timings.mark("run_all_sent")

    def wait_all_executed(self, timeout: float = RUN_ALL_S) -> dict:
        def done(st):
            cells = st.get("cells") or []
            k = st.get("kernel") or {}
            ok = cells and all(c["count"] is not None and c.get("state") in (None, "idle") for c in cells)
            return st if ok and k.get("status") == "idle" else None

        st = self.wait_for("all cells executed", done, timeout)
        self.timings.mark("all_executed")
        return st

    def wait_visible(self, selector: str, what: str, timeout: float = WIDGET_S):
        loc = self.page.locator(selector).first

        def visible(_st):
            try:
                return loc.is_visible()
            except Exception:
                return False

        self.wait_for(f"{what} ({selector}) visible", visible, timeout)
        return loc

    # -- plotly ----------------------------------------------------------------------------------------------
    def plot(self, selector: str) -> dict:
        data = self.page.evaluate(JS_PLOTLY_POINTS, [selector])
        if data is None:
            self.fail(f"no plotly figure under {selector}")
        return data

    def tag_plot(
        self,
        tag: str,
        *,
        scope: str = "body",
        trace: str | None = None,
        text: str | None = None,
        nth: int = 0,
        timeout: float = WIDGET_S,
    ) -> str:
        """Wait for the figure identified by a trace name / title text and return a CSS selector for it."""
        what = f"plot with trace={trace!r} text={text!r} (#{nth}) in {scope}"
        self.wait_for(
            what, lambda _st: self.page.evaluate(JS_TAG_PLOT, [scope, trace, text, tag, nth]), timeout
        )
        return f'[data-mltest="{tag}"]'

    def trace(self, selector: str, name: str) -> dict:
        data = self.plot(selector)
        for t in data["traces"]:
            if t["name"] == name:
                return t
        self.fail(f"no trace named {name!r} in {selector}; traces: {[t['name'] for t in data['traces']]}")

    def _into_view(self, selector: str) -> None:
        # page.mouse works in viewport pixels: the figure must be on screen before coordinates are read.
        self.page.locator(selector).first.scroll_into_view_if_needed()
        self.page.wait_for_timeout(200)

    def click_at(self, x: float, y: float) -> None:
        # Hover first so plotly's hover logic picks the point, then click at the same pixel.
        self.page.mouse.move(x, y)
        self.page.wait_for_timeout(150)
        self.page.mouse.click(x, y)

    def click_trace_point(self, selector: str, name: str, index: int = 0) -> dict:
        """Click point `index` of trace `name` at its pixel centre; returns the point (data + pixels)."""
        self._into_view(selector)
        pts = self.trace(selector, name)["points"]
        if len(pts) <= index:
            self.fail(f"trace {name!r} has {len(pts)} visible points, cannot click point {index}")
        p = pts[index]
        self.click_at(p["px"], p["py"])
        return p

    def isolated_point(self, selector: str, names, exclude_cd=()) -> tuple[str, dict]:
        """(trace name, point) of the point of traces `names` farthest from every other drawn point, so a
        click on it cannot land on a neighbour; points whose customdata is in `exclude_cd` are skipped."""
        data = self.plot(selector)
        everything = [p for t in data["traces"] for p in t["points"] if t["mode"] != "lines"]
        best, best_gap = None, -1.0
        for t in data["traces"]:
            if t["name"] not in names:
                continue
            for p in t["points"]:
                if p["cd"] in exclude_cd:
                    continue
                gap = min(
                    ((p["px"] - q["px"]) ** 2 + (p["py"] - q["py"]) ** 2 for q in everything if q is not p),
                    default=1e18,
                )
                if gap > best_gap:
                    best, best_gap = (t["name"], p), gap
        if best is None:
            self.fail(f"no clickable point in traces {sorted(names)} of {selector}")
        return best

    def click_empty(self, selector: str, min_px: float = 30.0) -> tuple[float, float]:
        """Click inside the plot area as far as possible from every scatter point (at least `min_px`)."""
        self._into_view(selector)
        data = self.plot(selector)
        a = data["area"]
        pts = [(p["px"], p["py"]) for t in data["traces"] for p in t["points"]]
        best, best_d = None, -1.0
        # A coarse grid kept 10% away from the edges (axes and modebar take clicks there).
        for i in range(1, 20):
            for j in range(1, 20):
                x = a["left"] + a["width"] * (0.1 + 0.8 * i / 20)
                y = a["top"] + a["height"] * (0.1 + 0.8 * j / 20)
                d = min((((x - px) ** 2 + (y - py) ** 2) ** 0.5 for px, py in pts), default=1e9)
                if d > best_d:
                    best, best_d = (x, y), d
        if best_d < min_px:
            self.fail(f"no empty spot at least {min_px}px from every point in {selector}")
        self.click_at(*best)
        return best

    def wait_plot(self, selector: str, what: str, predicate, timeout: float = UPDATE_S):
        """Wait until `predicate(plot_data)` holds for the figure under `selector`."""
        return self.wait_for(what, lambda _st: predicate(self.plot(selector)), timeout)

    def text(self, selector: str) -> str:
        loc = self.page.locator(selector)
        return loc.first.inner_text() if loc.count() else ""


# --- Voilà --------------------------------------------------------------------------------------------------

JS_VOILA_STATE = r"""
() => {
  const body = document.body ? document.body.innerText : '';
  const sel = '.jupyter-widgets-error-widget, '
    + '.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]';
  const errs = Array.from(document.querySelectorAll(sel))
    .map(e => e.innerText.slice(0, 400)).filter(t => /Error|Traceback/.test(t));
  const m = body.match(new RegExp([
    'There was an error when executing cell[^\\n]*', 'Traceback \\(most recent call last\\)[\\s\\S]{0,1500}',
    'Error (displaying|rendering) widget[^\\n]*', 'Kernel (died|restarting)[^\\n]*'].join('|')));
  if (m) errs.push(m[0]);
  return {errors: errs, spinner: !!document.querySelector('#loading, .voila-spinner, #voila-spinner')};
}
"""


def chromium_missing_reason() -> str | None:
    if not CHROMIUM.exists():
        return (
            f"{CHROMIUM} not found: browser tests need Debian's Chromium "
            "(run .ci/browser_setup.sh or `apt-get install -y chromium`)"
        )
    return None
