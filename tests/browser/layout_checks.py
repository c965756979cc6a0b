"""Geometry of an app in the page, measured from bounding boxes (not pixels): slider tracks, dropdown texts,
the app against the notebook's width, plot titles / axis titles / legends against their figure."""

from __future__ import annotations

MIN_TRACK_PX = 60

# One pass over the app under `sel` (the marginlab app root, or the output area holding the first plotly
# figure when the app has no root class). Returns plain numbers; the Python side decides what is a problem.
JS_LAYOUT = r"""
([sel, figSel]) => {
  let root = document.querySelector(sel);
  if (!root && figSel) {
    const fig = document.querySelector(figSel);
    root = fig ? fig.closest('.jp-OutputArea-output') : null;
  }
  if (!root) return null;
  const area = root.closest('.jp-OutputArea-output') || root.parentElement;
  const shown = e => {
    if (!e || e.getClientRects().length === 0) return false;
    for (let p = e; p && p !== document.body; p = p.parentElement) {
      const cs = getComputedStyle(p);
      if (cs.display === 'none' || cs.visibility === 'hidden') return false;
    }
    return true;
  };
  const box = e => { const r = e.getBoundingClientRect();
    return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width, height: r.height}; };
  const label = w => { const l = w.querySelector('.widget-label');
    return (l && l.innerText.trim()) || (w.innerText || '').trim().slice(0, 30); };
  const canvas = document.createElement('canvas').getContext('2d');
  const sliders = [], selects = [], plots = [];
  root.querySelectorAll('.widget-slider').forEach(w => {
    if (!shown(w)) return;
    const t = w.querySelector('.slider-container') || w.querySelector('.noUi-target');
    sliders.push({label: label(w), track: t ? t.getBoundingClientRect().width : 0});
  });
  root.querySelectorAll('select').forEach(s => {
    if (!shown(s)) return;
    const cs = getComputedStyle(s);
    canvas.font = `${cs.fontStyle} ${cs.fontWeight} ${cs.fontSize} ${cs.fontFamily}`;
    const room = s.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
    let need = 0, widest = '';
    for (const o of s.options) {
      const w = canvas.measureText(o.text).width;
      if (w > need) { need = w; widest = o.text; }
    }
    const w = s.closest('.widget-dropdown, .widget-select') || s.parentElement;
    selects.push({label: label(w), room: room, need: need, widest: widest});
  });
  root.querySelectorAll('.js-plotly-plot').forEach((gd, i) => {
    if (!shown(gd)) return;
    const svg = gd.querySelector('.main-svg');
    if (!svg) return;
    const parts = [];
    const add = (kind, e) => {
      if (!e || !e.getClientRects().length) return;
      const b = box(e);
      const text = (e.textContent || '').slice(0, 40);
      if (b.width > 0 && b.height > 0) parts.push({kind: kind, text: text, ...b});
    };
    gd.querySelectorAll('.gtitle').forEach(e => add('title', e));
    gd.querySelectorAll('[class^="g-x"][class$="title"] text').forEach(e => add('x axis title', e));
    gd.querySelectorAll('[class^="g-y"][class$="title"] text').forEach(e => add('y axis title', e));
    gd.querySelectorAll('.legend').forEach(e => add('legend', e.querySelector('.bg') || e));
    gd.querySelectorAll('.annotation-text').forEach(e => add('annotation', e));
    // the figure as it is drawn, and the part of it its ancestors let through (overflow clipping)
    let clip = box(svg);
    for (let p = gd.parentElement; p && p !== document.body; p = p.parentElement) {
      const cs = getComputedStyle(p);
      if (cs.overflowX !== 'visible' || cs.overflowY !== 'visible') {
        const b = box(p);
        clip = {left: Math.max(clip.left, b.left), right: Math.min(clip.right, b.right),
                top: clip.top, bottom: clip.bottom};
      }
    }
    const t = gd._fullLayout && gd._fullLayout.title ? (gd._fullLayout.title.text || '') : '';
    plots.push({i: i, title: t.slice(0, 50), svg: box(svg), clip: clip, parts: parts});
  });
  // controls cut by a container that clips them (a text box or dropdown without its right edge)
  const cut = [];
  const clipOf = e => {
    let c = {left: -1e9, right: 1e9};
    for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
      const cs = getComputedStyle(p);
      if (cs.overflowX !== 'visible') { const b = p.getBoundingClientRect();
        c = {left: Math.max(c.left, b.left), right: Math.min(c.right, b.right)}; }
    }
    return c;
  };
  root.querySelectorAll('input, select, textarea, button, .slider-container').forEach(e => {
    if (!shown(e)) return;
    const b = e.getBoundingClientRect(), c = clipOf(e);
    if (b.right > c.right + 1 || b.left < c.left - 1) {
      const w = e.closest('.widget-inline-hbox, .widget-button, .widget-html') || e;
      cut.push({label: label(w), right: b.right, clip: c.right, left: b.left, clipLeft: c.left});
    }
  });
  // descriptions shortened to an ellipsis ("emb...")
  const labels = [];
  root.querySelectorAll('.widget-label, .widget-label-basic').forEach(e => {
    if (shown(e) && e.scrollWidth > e.clientWidth + 1) {
      labels.push({text: e.textContent.trim(), need: e.scrollWidth, room: e.clientWidth});
    }
  });
  const pick = q => { const e = root.querySelector(q); return e && shown(e) ? box(e) : null; };
  return {
    root: box(root), area: area ? box(area) : null,
    areaScroll: area ? {scroll: area.scrollWidth, client: area.clientWidth} : null,
    rootScroll: {scroll: root.scrollWidth, client: root.clientWidth},
    viewport: {width: window.innerWidth, height: window.innerHeight},
    sliders: sliders, selects: selects, plots: plots, cut: cut, labels: labels,
    controls: pick('.marginlab-controls'), surface: pick('[data-mltest="surface"]'),
  };
}
"""


def layout_problems(m: dict, *, min_track: float = MIN_TRACK_PX) -> list[str]:
    """Every geometry problem in a :data:`JS_LAYOUT` measurement, as readable sentences (empty: all fits)."""
    if m is None:
        return ["the app was not found in the page"]
    out = []
    for s in m["sliders"]:
        if s["track"] < min_track:
            out.append(f"slider {s['label']!r}: track {s['track']:.0f} px < {min_track} px")
    for s in m["selects"]:
        if s["need"] > s["room"] + 0.5:
            out.append(f"dropdown {s['label']!r}: {s['widest']!r} needs {s['need']:.0f} px, "
                       f"has {s['room']:.0f}")
    for lab in m.get("labels", []):
        out.append(f"label {lab['text']!r} is cut ({lab['need']} px in {lab['room']} px)")
    for c in m.get("cut", []):
        out.append(f"control {c['label']!r} is cut by its container (x {c['left']:.0f}-{c['right']:.0f}, "
                   f"shown {c['clipLeft']:.0f}-{c['clip']:.0f})")
    area, root = m["area"], m["root"]
    if area and root["right"] > area["right"] + 1:
        out.append(f"the app ({root['width']:.0f} px) is wider than the notebook's output "
                   f"({area['width']:.0f} px)")
    for name, sc in (("output area", m["areaScroll"]), ("app", m["rootScroll"])):
        if sc and sc["scroll"] > sc["client"] + 1:
            out.append(f"the {name} scrolls sideways ({sc['scroll']} px content in {sc['client']} px)")
    for p in m["plots"]:
        c, svg = p["clip"], p["svg"]
        if svg["right"] > c["right"] + 1 or svg["left"] < c["left"] - 1:
            out.append(f"plot {p['title']!r} is cut by its container ({svg['width']:.0f} px drawn, "
                       f"{c['right'] - c['left']:.0f} px shown)")
        for part in p["parts"]:
            lo, hi = max(svg["left"], c["left"]), min(svg["right"], c["right"])
            if part["left"] < lo - 1 or part["right"] > hi + 1 or part["top"] < svg["top"] - 1 or (
                    part["bottom"] > svg["bottom"] + 1):
                out.append(f"plot {p['title']!r}: {part['kind']} {part['text']!r} is cut "
                           f"(x {part['left']:.0f}-{part['right']:.0f} in {lo:.0f}-{hi:.0f}, "
                           f"y {part['top']:.0f}-{part['bottom']:.0f} in "
                           f"{svg['top']:.0f}-{svg['bottom']:.0f})")
    return out


def measure(page, root_selector: str = ".marginlab-app", figure_selector: str | None = None) -> dict:
    return page.evaluate(JS_LAYOUT, [root_selector, figure_selector])


def assert_fits(s, label: str) -> None:
    """Measure the app in ``s`` (a BrowserSession) after a relayout, save a screenshot, fail naming every
    problem."""
    s.page.wait_for_timeout(1500)
    problems = layout_problems(measure(s.page))
    s.screenshot(label)
    if problems:
        s.fail(f"layout at {label}:\n  " + "\n  ".join(problems))


def copied_link(s) -> str:
    """Click the app's "copy link" button and read the link back from the clipboard."""
    s.page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=s.server.base)
    s.page.locator(".marginlab-copy-link").first.click()
    return s.page.evaluate("() => navigator.clipboard.readText()")


def open_in_voila(s, url: str, width: int = 1024, height: int = 768):
    """A second page of the same browser (and login) on ``url``, as a BrowserSession checking Voila errors."""
    from labharness import BrowserSession

    page = s.page.context.new_page()
    page.set_viewport_size({"width": width, "height": height})
    v = BrowserSession(page, s.server, s.name + "-voila")
    v.voila = True
    page.goto(url, wait_until="domcontentloaded", timeout=300_000)
    return v

