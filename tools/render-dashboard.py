#!/usr/bin/env python3
"""Render docs/grafana-dashboard.json into one PNG from a real Prometheus.

This is not Grafana. Grafana cannot be installed where this project is
built, so this script stands in for a screenshot: it reads the dashboard
JSON, runs every panel's own PromQL (`expr`, with Grafana's variables put in)
against the Prometheus HTTP API, and draws the panels in the dashboard's own
`gridPos` layout (24 columns, rows) in a dark, Grafana-like style.

- timeseries and state-timeline panels: `/api/v1/query_range`;
- stat, bargauge and table panels: `/api/v1/query` at the end of the range;
- `$__rate_interval`, `$__interval`, `$__range` (and `_s`/`_ms` forms) are
  computed as Grafana does: interval = max(range / panel width in pixels,
  scrape interval), rate interval = max(interval + scrape, 4 * scrape);
- template variables of the dashboard (`$instance`, ...) take `--var
  NAME=VALUE`, else their "All" value (`allValue`, or `.*`);
- `legendFormat` `{{label}}` is filled from each series' labels;
- units (`fieldConfig.defaults.unit`), value mappings, thresholds and the
  table transformations `merge` and `organize` are applied.

It fails loudly (exit 1, naming the panel and the query) when a query
errors, returns nothing (unless `--allow-empty`), or when a panel type,
unit, transformation or variable is one it does not know: no panel is drawn
empty in silence.

Usage:

    # no network, python3 only: every panel type, unit and variable supported?
    python3 tools/render-dashboard.py --check docs/grafana-dashboard.json

    # render the last 15 minutes from a Prometheus scraping every 5 s
    python3 tools/render-dashboard.py docs/grafana-dashboard.json \\
        --prometheus http://127.0.0.1:9091 --scrape-interval 5 \\
        --last 15m --out docs/grafana-dashboard.png

    # or an exact window (Unix seconds)
    ... --start 1764684000 --end 1764684720

Requirements: Python 3.11 (tested with 3.11.7); rendering needs matplotlib
(tested with 3.11.2 and the numpy and Pillow it brings, `pip install
matplotlib`); the queries use
only the standard library (urllib). Tested against Prometheus 2.42 (Debian
12's `prometheus` package). `--check` needs nothing but python3.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone

# Grafana's grid: 24 columns, a height unit of 30 px with 8 px margins.
GRID_COLUMNS = 24
CELL_HEIGHT = 30
CELL_MARGIN = 8

PANEL_TYPES = {"row", "timeseries", "stat", "bargauge", "state-timeline", "table"}
RANGE_TYPES = {"timeseries", "state-timeline"}
TRANSFORMATIONS = {"merge", "organize"}
UNITS = {None, "", "none", "short", "reqps", "ops", "s", "d", "dtdurations", "dateTimeAsIso"}
OVERRIDE_PROPERTIES = {"unit", "custom.axisPlacement"}
DRAW_STYLES = {None, "line", "bars"}
STACKING = {None, "none", "normal"}
BUILTIN_VARS = {
    "__rate_interval",
    "__interval",
    "__interval_ms",
    "__range",
    "__range_s",
    "__range_ms",
}

# Grafana 10 dark theme and its classic palette.
BG = "#111217"
PANEL_BG = "#181b1f"
BORDER = "#2c3235"
TEXT = "#ccccdc"
TEXT_DIM = "#8e8e9e"
GRIDLINE = "#2a2d33"
PALETTE = [
    "#73bf69", "#f2cc0c", "#5794f2", "#ff9830", "#f2495c", "#b877d9",
    "#70dbed", "#fade2a", "#8ab8ff", "#ffb357", "#ff7383", "#ca95e5",
]
COLORS = {
    "green": "#73bf69", "red": "#f2495c", "orange": "#ff9830",
    "yellow": "#fade2a", "blue": "#5794f2", "purple": "#b877d9",
}


class Failure(Exception):
    """A problem that must stop the rendering, with the panel it is in."""


@dataclass
class Series:
    labels: dict
    times: list = field(default_factory=list)
    values: list = field(default_factory=list)
    name: str = ""


# ---------------------------------------------------------------- dashboard


def load(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def all_panels(dash: dict) -> list:
    out = []

    def walk(panels):
        for p in panels or []:
            out.append(p)
            walk(p.get("panels"))

    walk(dash.get("panels"))
    return out


def template_vars(dash: dict, given: dict) -> dict:
    """Values of the dashboard's template variables: given, or "All"."""
    values = {}
    for v in dash.get("templating", {}).get("list", []):
        name = v["name"]
        if v.get("type") == "datasource":
            values[name] = given.get(name, "prometheus")
        elif name in given:
            values[name] = given[name]
        elif v.get("includeAll"):
            values[name] = v.get("allValue") or ".*"
        else:
            raise Failure(f"template variable ${name} has no 'All' value: pass --var {name}=...")
    unknown = set(given) - set(values)
    if unknown:
        raise Failure(f"--var names no variable of the dashboard: {', '.join(sorted(unknown))}")
    return values


VAR_RE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def variables_in(text: str) -> set:
    return {a or b or c for a, b, c in VAR_RE.findall(text)}


def substitute(text: str, values: dict) -> str:
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name not in values:
            raise Failure(f"unknown variable ${name}")
        return str(values[name])

    return VAR_RE.sub(repl, text)


def unit_of(panel: dict):
    return panel.get("fieldConfig", {}).get("defaults", {}).get("unit")


def check(dash: dict) -> list:
    """Everything the renderer must support, without a network. Returns
    a list of problems (empty: fine)."""
    problems = []
    known = BUILTIN_VARS | {v["name"] for v in dash.get("templating", {}).get("list", [])}
    for p in all_panels(dash):
        where = f"panel {p.get('id')} {p.get('title')!r}"
        t = p.get("type")
        if t not in PANEL_TYPES:
            problems.append(f"{where}: panel type {t!r} is not supported")
            continue
        if t == "row":
            continue
        gp = p.get("gridPos") or {}
        if not all(isinstance(gp.get(k), int) for k in "xywh"):
            problems.append(f"{where}: gridPos needs x, y, w, h")
        if unit_of(p) not in UNITS:
            problems.append(f"{where}: unit {unit_of(p)!r} is not supported")
        custom = p.get("fieldConfig", {}).get("defaults", {}).get("custom", {})
        if custom.get("drawStyle") not in DRAW_STYLES:
            problems.append(f"{where}: drawStyle {custom.get('drawStyle')!r} is not supported")
        if custom.get("stacking", {}).get("mode") not in STACKING:
            problems.append(f"{where}: stacking {custom['stacking'].get('mode')!r} is not supported")
        for o in p.get("fieldConfig", {}).get("overrides", []):
            if o.get("matcher", {}).get("id") != "byName":
                problems.append(f"{where}: override matcher {o.get('matcher')!r} is not supported")
            for prop in o.get("properties", []):
                if prop.get("id") not in OVERRIDE_PROPERTIES:
                    problems.append(f"{where}: override property {prop.get('id')!r} is not supported")
                if prop.get("id") == "unit" and prop.get("value") not in UNITS:
                    problems.append(f"{where}: override unit {prop.get('value')!r} is not supported")
        for tr in p.get("transformations", []):
            if tr.get("id") not in TRANSFORMATIONS:
                problems.append(f"{where}: transformation {tr.get('id')!r} is not supported")
        targets = [tg for tg in p.get("targets", []) if not tg.get("hide")]
        if not targets:
            problems.append(f"{where}: no query")
        for tg in targets:
            expr = tg.get("expr")
            if not expr:
                problems.append(f"{where} query {tg.get('refId')}: no expr")
                continue
            for name in variables_in(expr) - known:
                problems.append(f"{where} query {tg.get('refId')}: unknown variable ${name}")
    return problems


# --------------------------------------------------------------- prometheus


def api(base: str, path: str, params: dict, where: str, expr: str) -> list:
    url = f"{base.rstrip('/')}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:
        try:
            detail = json.load(e).get("error", "")
        except Exception:  # noqa: BLE001 - the status is the message then
            detail = ""
        raise Failure(f"{where}: query failed (HTTP {e.code} {detail}): {expr}") from None
    except (urllib.error.URLError, OSError) as e:
        raise Failure(f"{where}: Prometheus at {base} not reachable ({e}): {expr}") from None
    if body.get("status") != "success":
        raise Failure(f"{where}: query failed ({body.get('error')}): {expr}")
    data = body["data"]
    if data["resultType"] not in ("matrix", "vector"):
        raise Failure(f"{where}: result type {data['resultType']} not supported: {expr}")
    return data["result"]


def legend(fmt: str, labels: dict, expr: str) -> str:
    if fmt:
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt).strip()
    shown = {k: v for k, v in labels.items() if k != "__name__"}
    if not shown:
        return labels.get("__name__", expr)
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(shown.items()))
    return f"{labels.get('__name__', '')}{{{inner}}}"


@dataclass
class Window:
    start: float
    end: float
    scrape: float

    def interval(self, width_px: float) -> float:
        raw = (self.end - self.start) / max(width_px, 1)
        return max(self.scrape, math.ceil(raw))

    def builtins(self, width_px: float) -> dict:
        iv = self.interval(width_px)
        rng = int(round(self.end - self.start))
        return {
            "__interval": f"{int(iv)}s",
            "__interval_ms": str(int(iv * 1000)),
            "__rate_interval": f"{int(max(iv + self.scrape, 4 * self.scrape))}s",
            "__range": f"{rng}s",
            "__range_s": str(rng),
            "__range_ms": str(rng * 1000),
        }


def run_queries(panel, prom, window, values, width_px, allow_empty):
    """Every query of the panel: a list of (target, expr, [Series])."""
    where = f"panel {panel['id']} {panel['title']!r}"
    vals = dict(values, **window.builtins(width_px))
    out = []
    for tg in panel.get("targets", []):
        if tg.get("hide"):
            continue
        expr = substitute(tg["expr"], vals)
        q = f"{where} query {tg.get('refId')}"
        if panel["type"] in RANGE_TYPES:
            step = window.interval(width_px)
            result = api(prom, "/api/v1/query_range",
                         {"query": expr, "start": window.start, "end": window.end, "step": step},
                         q, expr)
            series = [
                Series(r["metric"], [float(t) for t, _ in r["values"]],
                       [float(v) for _, v in r["values"]])
                for r in result
            ]
        else:
            result = api(prom, "/api/v1/query", {"query": expr, "time": window.end}, q, expr)
            series = [Series(r["metric"], [float(r["value"][0])], [float(r["value"][1])])
                      for r in result]
        if not series and not allow_empty:
            raise Failure(f"{q}: no data (an empty panel would hide it; --allow-empty draws 'No data'): {expr}")
        for s in series:
            s.name = legend(tg.get("legendFormat", ""), s.labels, expr)
        out.append((tg, expr, series))
    return out


# ------------------------------------------------------------------ formats


def si(v: float, digits: int = 3) -> str:
    if v is None or math.isnan(v):
        return "–"
    a = abs(v)
    for div, suf in ((1e9, " G"), (1e6, " M"), (1e3, " K")):
        if a >= div:
            return f"{v / div:.{max(digits - 2, 0)}g}{suf}".replace(" ", " ")
    if a == 0:
        return "0"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}".rstrip("0").rstrip(".")
    if a >= 1:
        return f"{v:.2f}".rstrip("0").rstrip(".")
    return f"{v:.3g}"


def seconds(v: float) -> str:
    a = abs(v)
    if a == 0:
        return "0 s"
    if a < 1e-3:
        return f"{v * 1e6:.3g} µs"
    if a < 1:
        return f"{v * 1e3:.3g} ms"
    if a < 60:
        return f"{v:.3g} s"
    if a < 3600:
        return f"{v / 60:.3g} min"
    return f"{v / 3600:.3g} h"


def durations(v: float) -> str:
    v = int(round(v))
    if v == 0:
        return "0 seconds"
    parts = []
    for size, name in ((86400 * 365, "year"), (86400, "day"), (3600, "hour"),
                       (60, "minute"), (1, "second")):
        n, v = divmod(v, size)
        if n:
            parts.append(f"{n} {name}{'s' if n != 1 else ''}")
    return ", ".join(parts[:2])


def fmt(v, unit) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if unit == "reqps":
        return f"{si(v)} req/s"
    if unit == "ops":
        return f"{si(v)} ops/s"
    if unit == "s":
        return seconds(v)
    if unit == "dtdurations":
        return durations(v)
    if unit == "d":
        return f"{si(v)} day" + ("" if v == 1 else "s")
    if unit == "dateTimeAsIso":
        return datetime.fromtimestamp(v / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return si(v)


def blend(a: str, b: str, t: float) -> str:
    """The colour a fraction t of the way from a to b (#rrggbb)."""
    ca = [int(a[i:i + 2], 16) for i in (1, 3, 5)]
    cb = [int(b[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(ca, cb))


def overrides(panel) -> dict:
    """Per field name (byName matcher): {property id: value}."""
    out = {}
    for o in panel.get("fieldConfig", {}).get("overrides", []):
        props = out.setdefault(o["matcher"]["options"], {})
        for prop in o.get("properties", []):
            props[prop["id"]] = prop["value"]
    return out


def threshold_color(panel, v) -> str:
    steps = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps")
    if not steps:
        return COLORS["green"]
    color = steps[0]["color"]
    for s in steps:
        if s["value"] is None or v >= s["value"]:
            color = s["color"]
    return COLORS.get(color, color)


def value_mapping(panel) -> dict:
    out = {}
    for m in panel.get("fieldConfig", {}).get("defaults", {}).get("mappings", []):
        if m.get("type") != "value":
            raise Failure(f"panel {panel['id']} {panel['title']!r}: mapping type {m.get('type')} not supported")
        for k, o in m["options"].items():
            out[float(k)] = (o.get("text", k), COLORS.get(o.get("color"), o.get("color") or PALETTE[0]))
    return out


# ------------------------------------------------------------------ drawing


class Canvas:
    """Pixel coordinates (origin top left) on one matplotlib figure."""

    def __init__(self, width_px: int, rows: int):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        self.plt = plt
        self.w = width_px
        self.pad = 12
        self.header = 52
        self.col = (width_px - 2 * self.pad + CELL_MARGIN) / GRID_COLUMNS
        self.h = self.header + rows * (CELL_HEIGHT + CELL_MARGIN) + self.pad
        self.fig = plt.figure(figsize=(self.w / 100, self.h / 100), dpi=100, facecolor=BG)

    def rect(self, gp):
        x = self.pad + gp["x"] * self.col
        y = self.header + gp["y"] * (CELL_HEIGHT + CELL_MARGIN)
        w = gp["w"] * self.col - CELL_MARGIN
        h = gp["h"] * (CELL_HEIGHT + CELL_MARGIN) - CELL_MARGIN
        return x, y, w, h

    def fx(self, x):
        return x / self.w

    def fy(self, y):
        return 1 - y / self.h

    def box(self, x, y, w, h, face=PANEL_BG, edge=BORDER, radius=True):
        from matplotlib.patches import FancyBboxPatch

        self.fig.patches.append(FancyBboxPatch(
            (self.fx(x), self.fy(y + h)), w / self.w, h / self.h,
            boxstyle="round,pad=0,rounding_size=0.002" if radius else "square,pad=0",
            transform=self.fig.transFigure, facecolor=face, edgecolor=edge, linewidth=0.8))

    def text(self, x, y, s, size=9, color=TEXT, weight="normal", ha="left", va="top", **kw):
        return self.fig.text(self.fx(x), self.fy(y), s, fontsize=size, color=color,
                             weight=weight, ha=ha, va=va, **kw)

    def axes(self, x, y, w, h):
        ax = self.fig.add_axes((self.fx(x), self.fy(y + h), w / self.w, h / self.h))
        ax.set_facecolor(PANEL_BG)
        ax.set_zorder(2)  # above the panel boxes (figure patches)
        for s in ax.spines.values():
            s.set_visible(False)
        ax.tick_params(colors=TEXT_DIM, labelsize=7.5, length=0)
        return ax


def text_width(s: str, size: float) -> float:
    """Rough width in pixels of text in DejaVu Sans at `size` points (100 dpi)."""
    return len(s) * size * 0.6 * 100 / 72


def flow_legend(cv, entries, x, y, w, size=7.8):
    """Grafana's list legend under a graph: colour mark and name, flowing."""
    line_h = size * 1.9
    cx, cy = x, y
    for name, color in entries:
        ew = 14 + text_width(name, size) + 14
        if cx > x and cx + ew > x + w:
            cx, cy = x, cy + line_h
        cv.box(cx, cy + line_h / 2 - 1.5, 10, 3, face=color, edge=color, radius=False)
        cv.text(cx + 14, cy + line_h / 2, name, size=size, color=TEXT, va="center")
        cx += ew
    return cy + line_h - y


def legend_height(entries, w, size=7.8) -> float:
    line_h = size * 1.9
    cx, lines = 0.0, 1
    for name, _ in entries:
        ew = 14 + text_width(name, size) + 14
        if cx > 0 and cx + ew > w:
            cx, lines = 0.0, lines + 1
        cx += ew
    return lines * line_h


def time_axis(ax, window):
    import matplotlib.dates as mdates

    ax.set_xlim(datetime.fromtimestamp(window.start, timezone.utc),
                datetime.fromtimestamp(window.end, timezone.utc))
    minutes = (window.end - window.start) / 60
    every = next((n for n in (1, 2, 5, 10, 15, 30, 60) if minutes / n <= 8), 60)
    if every < 60:
        ax.xaxis.set_major_locator(mdates.MinuteLocator(byminute=range(0, 60, every)))
    else:
        ax.xaxis.set_major_locator(mdates.HourLocator())
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=timezone.utc))


def draw_timeseries(cv, panel, results, window, x, y, w, h):
    import numpy as np
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    unit = unit_of(panel)
    custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom", {})
    bars = custom.get("drawStyle") == "bars"
    stacked = custom.get("stacking", {}).get("mode") == "normal"
    fill = custom.get("fillOpacity", 8) / 100
    over = overrides(panel)
    entries, lines = [], []
    for _, _, series in results:
        for s in series:
            color = PALETTE[len(lines) % len(PALETTE)]
            entries.append((s.name, color))
            lines.append((s, color))
    lh = legend_height(entries, w - 16)
    right = any(over.get(s.name, {}).get("custom.axisPlacement") == "right" for s, _ in lines)
    ax = cv.axes(x + 62, y + 30, w - 72 - (58 if right else 0), h - 30 - lh - 26)
    axes = {"left": (ax, unit)}
    if right:
        ax2 = ax.twinx()
        for sp in ax2.spines.values():
            sp.set_visible(False)
        ax2.tick_params(colors=TEXT_DIM, labelsize=7.5, length=0)
        axes["right"] = (ax2, None)
    step = window.interval(w)
    base = {}
    tops = {}
    for s, color in lines:
        props = over.get(s.name, {})
        side = props.get("custom.axisPlacement", "left")
        if side not in axes:
            side = "left"
        target, side_unit = axes[side]
        if side == "right":
            axes["right"] = (target, props.get("unit", side_unit or unit))
        ts = [datetime.fromtimestamp(t, timezone.utc) for t in s.times]
        vals = np.array(s.values, dtype=float)
        if bars:
            bottom = np.array([base.get(t, 0.0) for t in s.times]) if stacked else 0
            target.bar(ts, vals, width=step / 86400 * 0.8, bottom=bottom, color=color,
                       alpha=max(fill, 0.3), linewidth=0, align="center")
            if stacked:
                for t, v, b in zip(s.times, vals, np.broadcast_to(bottom, vals.shape)):
                    base[t] = b + (0 if math.isnan(v) else v)
            top = float(np.nanmax(vals + bottom)) if len(vals) else 0
        else:
            target.plot(ts, vals, color=color, linewidth=1.3)
            target.fill_between(ts, vals, color=color, alpha=fill, linewidth=0)
            top = float(np.nanmax(vals)) if len(vals) and not np.all(np.isnan(vals)) else 0
        tops[side] = max(tops.get(side, 0), top)
    time_axis(ax, window)
    for side, (a, u) in axes.items():
        a.set_ylim(0, tops.get(side, 0) * 1.1 if tops.get(side, 0) > 0 else 1)
        a.yaxis.set_major_locator(MaxNLocator(nbins=4))
        a.yaxis.set_major_formatter(FuncFormatter(lambda v, _, u=u: fmt(v, u)))
    ax.set_axisbelow(True)
    ax.grid(True, color=GRIDLINE, linewidth=0.6)
    flow_legend(cv, entries, x + 8, y + h - lh - 4, w - 16)


def draw_state_timeline(cv, panel, results, window, x, y, w, h):
    mapping = value_mapping(panel)
    rows = [s for _, _, series in results for s in series]
    seen = {}
    label_w = max(text_width(s.name, 7.8) for s in rows) + 14
    ax = cv.axes(x + label_w, y + 30, w - label_w - 10, h - 30 - 44)
    step = window.interval(w)
    for i, s in enumerate(rows):
        row = len(rows) - 1 - i
        start = None
        for t, v in zip(s.times + [None], s.values + [None]):
            if start is not None and (v != start[1] or t is None or t - prev > step * 1.5):
                text, color = mapping.get(start[1], (fmt(start[1], None), PALETTE[0]))
                seen[text] = color
                t0 = datetime.fromtimestamp(start[0], timezone.utc)
                t1 = datetime.fromtimestamp(prev + step, timezone.utc)
                ax.barh(row, t1 - t0, left=t0, height=0.8, color=color, edgecolor=PANEL_BG, linewidth=1)
                start = None
            if t is not None and start is None:
                start = (t, v)
            prev = t if t is not None else prev
        cv.text(x + 8, y + 30 + (i + 0.5) * (h - 74) / len(rows), s.name, size=7.8, va="center")
    ax.set_ylim(-0.5, len(rows) - 0.5)
    ax.set_yticks([])
    time_axis(ax, window)
    flow_legend(cv, list(seen.items()), x + 8, y + h - 22, w - 16)


def draw_stat(cv, panel, results, x, y, w, h):
    unit = unit_of(panel)
    calcs = panel.get("options", {}).get("reduceOptions", {}).get("calcs", ["lastNotNull"])
    if calcs != ["lastNotNull"]:
        raise Failure(f"panel {panel['id']} {panel['title']!r}: reduce {calcs} not supported")
    series = [s for _, _, ss in results for s in ss]
    bw = (w - 16) / len(series)
    for i, s in enumerate(series):
        v = s.values[-1]
        bx, by, bh = x + 8 + i * bw, y + 30, h - 38
        bg = threshold_color(panel, v) if panel.get("options", {}).get("colorMode") == "background" else PANEL_BG
        cv.box(bx, by, bw - 4, bh, face=bg, edge=bg)
        ink = "#ffffff" if bg != PANEL_BG else threshold_color(panel, v)
        cv.text(bx + (bw - 4) / 2, by + 8, s.name, size=8.5, color=ink, ha="center")
        value = fmt(v, unit)
        size = min(26, (bh - 26) * 0.55, (bw - 24) / text_width(value or "0", 1) * 0.88)  # bold is wider
        cv.text(bx + (bw - 4) / 2, by + 22 + (bh - 22) / 2, value, size=size, color=ink,
                weight="bold", ha="center", va="center")


def draw_bargauge(cv, panel, results, x, y, w, h):
    from matplotlib.patches import Rectangle

    unit = unit_of(panel)
    series = sorted((s for _, _, ss in results for s in ss), key=lambda s: -s.values[-1])
    top = max(s.values[-1] for s in series) or 1
    n = len(series)
    area_y, area_h = y + 32, h - 40
    slot = area_h / max(n, 1)
    bar_h = max(min(slot - 22, 20), 4)
    value_w = 64
    for i, s in enumerate(series):
        v = s.values[-1]
        sy = area_y + i * slot
        cv.text(x + 10, sy + 1, s.name, size=7.8, color=TEXT)
        bx, bw = x + 10, w - 20 - value_w
        by = sy + 16
        cv.box(bx, by, bw, bar_h, face="#22252b", edge="#22252b", radius=False)
        frac = max(v / top, 0)
        # gradient: a few steps from dim to full green, as Grafana's "gradient" mode
        steps = 12
        for k in range(steps):
            if k / steps >= frac:
                break
            seg = min(frac - k / steps, 1 / steps)
            alpha = 0.35 + 0.65 * (k + 1) / steps  # blended, not transparent: no seams
            color = blend("#22252b", COLORS["green"], alpha)
            cv.fig.patches.append(Rectangle(
                (cv.fx(bx + bw * k / steps), cv.fy(by + bar_h)), (bw * seg + 1) / cv.w, bar_h / cv.h,
                transform=cv.fig.transFigure, facecolor=color, linewidth=0))
        cv.text(x + w - 10, by + bar_h / 2, fmt(v, unit), size=9, color=COLORS["green"],
                weight="bold", ha="right", va="center")


def table_frames(panel, results):
    """Grafana's table transformations `merge` and `organize` over instant
    queries in table format: rows of label columns and `Value #<refId>`."""
    frames = []
    for tg, _, series in results:
        rows = []
        for s in series:
            row = {k: v for k, v in s.labels.items() if k != "__name__"}
            row["Time"] = s.times[-1]
            row[f"Value #{tg['refId']}"] = s.values[-1]
            rows.append(row)
        frames.append(rows)
    rows = frames[0] if frames else []
    columns = []
    for t in panel.get("transformations", []):
        if t["id"] == "merge":
            merged = {}
            for frame in frames:
                for r in frame:
                    label_keys = tuple(sorted((k, v) for k, v in r.items()
                                              if k != "Time" and not k.startswith("Value #")))
                    merged.setdefault(label_keys, {}).update(r)
            # rows that share all labels of another row join it (Grafana joins on common fields)
            rows = []
            for keys, r in merged.items():
                target = next((o for o in rows if all(o.get(k) == v for k, v in keys)), None)
                if target is not None:
                    target.update(r)
                else:
                    rows.append(dict(r))
            # fold rows whose labels are a subset of another's into it
            final = []
            for r in sorted(rows, key=lambda r: -len(r)):
                labels = {k: v for k, v in r.items() if k != "Time" and not k.startswith("Value #")}
                host = next((o for o in final if all(o.get(k) == v for k, v in labels.items())), None)
                if host is not None:
                    for k, v in r.items():
                        host.setdefault(k, v)
                else:
                    final.append(dict(r))
            rows = final
        elif t["id"] == "organize":
            o = t.get("options", {})
            excl = {k for k, v in o.get("excludeByName", {}).items() if v}
            ren = o.get("renameByName", {})
            rows = [{ren.get(k, k): v for k, v in r.items() if k not in excl} for r in rows]
    for r in rows:
        for k in r:
            if k not in columns:
                columns.append(k)
    return columns, rows


def draw_table(cv, panel, results, x, y, w, h):
    columns, rows = table_frames(panel, results)
    units = {}
    for o in panel.get("fieldConfig", {}).get("overrides", []):
        if o.get("matcher", {}).get("id") != "byName":
            raise Failure(f"panel {panel['id']} {panel['title']!r}: override matcher not supported")
        for prop in o.get("properties", []):
            if prop.get("id") == "unit":
                units[o["matcher"]["options"]] = prop["value"]

    def cell(col, v):
        if isinstance(v, float):
            return fmt(v, units.get(col, unit_of(panel)))
        return str(v)

    cells = [[cell(c, r.get(c, "")) for c in columns] for r in rows]
    want = [max([text_width(c, 8)] + [text_width(row[i], 8) for row in cells]) + 16
            for i, c in enumerate(columns)]
    avail = w - 16
    # a column too wide for the panel (a SHA-256) is cut with an ellipsis
    while sum(want) > avail:
        i = want.index(max(want))
        want[i] -= 8
        for row in cells:
            if text_width(row[i], 8) + 16 > want[i]:
                row[i] = row[i][: max(int((want[i] - 16) / text_width("x", 8)) - 1, 4)] + "…"
    cx = x + 8
    ty = y + 32
    cv.box(x + 8, ty, w - 16, 22, face="#22252b", edge="#22252b", radius=False)
    for i, c in enumerate(columns):
        cv.text(cx + 6, ty + 11, c, size=8, color=TEXT, weight="bold", va="center")
        for j, row in enumerate(cells):
            cv.text(cx + 6, ty + 22 + 11 + j * 24, row[i], size=8, color=TEXT, va="center",
                    family="DejaVu Sans Mono" if c == "content hash" else None)
        cx += want[i]
    for j in range(len(cells)):
        ly = ty + 22 + (j + 1) * 24
        cv.box(x + 8, ly, w - 16, 0.6, face=BORDER, edge=BORDER, radius=False)


def render(dash, args) -> int:
    values = template_vars(dash, dict(v.split("=", 1) for v in args.var))
    end = args.end or time.time()
    start = args.start or end - parse_duration(args.last)
    window = Window(start, end, args.scrape_interval)
    panels = all_panels(dash)
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    cv = Canvas(args.width, rows)
    stamp = lambda t: datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    cv.text(cv.pad, 16, dash.get("title", ""), size=14, weight="bold")
    cv.text(cv.w - cv.pad, 18,
            f"{stamp(start)} to {stamp(end)} UTC · rendered by tools/render-dashboard.py "
            f"from the dashboard's own queries (not Grafana)",
            size=8.5, color=TEXT_DIM, ha="right")
    drawn = 0
    for p in panels:
        if p["type"] not in PANEL_TYPES:
            raise Failure(f"panel {p.get('id')} {p.get('title')!r}: panel type {p['type']!r} is not supported")
        x, y, w, h = cv.rect(p["gridPos"])
        if p["type"] == "row":
            cv.text(x, y + h / 2 + 2, p["title"], size=11, weight="bold", va="center")
            continue
        results = run_queries(p, args.prometheus, window, values, w, args.allow_empty)
        cv.box(x, y, w, h)
        cv.text(x + 10, y + 9, p["title"], size=9.5, weight="bold")
        if not any(series for _, _, series in results):
            cv.text(x + w / 2, y + h / 2, "No data", size=11, color=TEXT_DIM, ha="center", va="center")
        elif p["type"] == "timeseries":
            draw_timeseries(cv, p, results, window, x, y, w, h)
        elif p["type"] == "state-timeline":
            draw_state_timeline(cv, p, results, window, x, y, w, h)
        elif p["type"] == "stat":
            draw_stat(cv, p, results, x, y, w, h)
        elif p["type"] == "bargauge":
            draw_bargauge(cv, p, results, x, y, w, h)
        elif p["type"] == "table":
            draw_table(cv, p, results, x, y, w, h)
        drawn += 1
        print(f"panel {p['id']:>2} {p['type']:<14} {p['title']}: "
              f"{sum(len(s) for _, _, s in results)} series", file=sys.stderr)
    if args.colors:
        # a palette PNG: the picture is flat colours and text, a third of the bytes
        import io

        from PIL import Image

        buf = io.BytesIO()
        cv.fig.savefig(buf, dpi=100, facecolor=BG, format="png")
        buf.seek(0)
        Image.open(buf).convert("RGB").quantize(colors=args.colors).save(args.out, optimize=True)
    else:
        cv.fig.savefig(args.out, dpi=100, facecolor=BG)
    print(f"{args.out}: {drawn} panels, {cv.w}x{int(cv.h)} px", file=sys.stderr)
    return 0


def parse_duration(s: str) -> float:
    m = re.fullmatch(r"(\d+)([smhd])", s)
    if not m:
        raise Failure(f"duration {s!r}: use e.g. 15m, 1h")
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dashboard", help="the dashboard JSON, e.g. docs/grafana-dashboard.json")
    ap.add_argument("--check", action="store_true",
                    help="only check that every panel type, unit and variable is supported (no network)")
    ap.add_argument("--prometheus", default="http://127.0.0.1:9090", help="Prometheus base URL")
    ap.add_argument("--scrape-interval", type=float, default=15,
                    help="the scrape interval in seconds, for $__rate_interval (Grafana's default 15)")
    ap.add_argument("--last", default="15m", help="time range ending now (or at --end), e.g. 15m")
    ap.add_argument("--start", type=float, help="start of the range, Unix seconds")
    ap.add_argument("--end", type=float, help="end of the range, Unix seconds")
    ap.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                    help="value of a template variable (default: its All value)")
    ap.add_argument("--width", type=int, default=1600, help="image width in pixels")
    ap.add_argument("--allow-empty", action="store_true",
                    help="draw 'No data' for a query with no result instead of failing")
    ap.add_argument("--out", default="grafana-dashboard.png", help="the PNG to write")
    ap.add_argument("--colors", type=int, default=256,
                    help="write a palette PNG of this many colours (Pillow, with matplotlib); 0: full colour")
    args = ap.parse_args(argv)
    try:
        dash = load(args.dashboard)
        problems = check(dash)
        if problems:
            for p in problems:
                print(f"render-dashboard: {p}", file=sys.stderr)
            return 1
        if args.check:
            n = sum(1 for p in all_panels(dash) if p["type"] != "row")
            print(f"{args.dashboard}: {n} panels, every type, unit and variable supported")
            return 0
        return render(dash, args)
    except Failure as e:
        print(f"render-dashboard: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
