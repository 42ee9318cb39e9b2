"""Charts as server-rendered SVG: no JavaScript, no dependency, allowed by the page's Content-Security-Policy (only
presentation attributes, no inline styles), accessible (``role="img"`` with a title and a description; every chart
sits next to a table of the same figures and a CSV download).

A chart spec is ``{"type": "line" | "bar" | "hbar", "categories": [...], "series": [{"name", "values"}], "unit"}``;
``None`` values are gaps (a hidden small cell)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from markupsafe import Markup, escape

# Colour-blind-safe palette, each at least 3:1 against white (WCAG 1.4.11, graphical objects).
PALETTE = ["#0b4f8a", "#c25400", "#1c7a45", "#8a1c7a", "#6b4500", "#a4111a", "#00708a", "#4a4a4a"]
TEXT = "#1a1a1a"
GRID = "#c4cad0"
FONT = 'font-family="system-ui, sans-serif"'


def nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for m in (1, 2, 4, 6, 8, 10):  # quarters fall on round numbers
        if m * exp >= value:
            return float(m * exp)
    return float(10 * exp)


def axis_max(spec: dict[str, Any]) -> float:
    """A fixed scale (``max``, e.g. 5 for ratings or 100 for a percentage) or a round one above the data."""
    fixed = spec.get("max")
    return float(fixed) if fixed else nice_max(max(_values(spec), default=0))


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if float(value).is_integer():
        return f"{int(value):,}".replace(",", ".")
    return f"{value:.1f}".replace(".", ",")


def divisions(vmax: float) -> int:
    """Grid intervals whose steps are round numbers (5 → 1, 2, 3...; 100 → 25, 50...)."""
    for d in (4, 5, 3, 2):
        step = vmax / d
        if abs(step * 2 - round(step * 2)) < 1e-9:
            return d
    return 4


def _values(spec: dict[str, Any]) -> list[float]:
    return [v for s in spec.get("series", []) for v in s.get("values", []) if v is not None]


def _legend(series: list[dict[str, Any]], x: float, y: float, width: float) -> tuple[str, float]:
    parts, cx, cy = [], x, y
    for i, s in enumerate(series):
        label = str(s["name"])
        w = 18 + 7.2 * len(label) + 16
        if cx + w > x + width and cx > x:
            cx, cy = x, cy + 20
        color = PALETTE[i % len(PALETTE)]
        parts.append(f'<rect x="{cx:.1f}" y="{cy - 10:.1f}" width="12" height="12" fill="{color}"/>'
                     f'<text x="{cx + 17:.1f}" y="{cy:.1f}" font-size="13" fill="{TEXT}" {FONT}>{escape(label)}</text>')
        cx += w
    return "".join(parts), cy + 10


def _frame(chart_id: str, title: str, desc: str, width: int, height: int, body: str) -> Markup:
    tid, did = f"{chart_id}-title", f"{chart_id}-desc"
    return Markup(
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-labelledby="{tid} {did}" xmlns="http://www.w3.org/2000/svg" '
        f'preserveAspectRatio="xMinYMin meet">'
        f'<title id="{tid}">{escape(title)}</title><desc id="{did}">{escape(desc)}</desc>{body}</svg>'
    )


def _y_axis(left: float, top: float, plot_w: float, plot_h: float, vmax: float, unit: str) -> str:
    parts = []
    d = divisions(vmax)
    for i in range(d + 1):
        v = vmax * i / d
        y = top + plot_h - plot_h * i / d
        parts.append(f'<line x1="{left:.1f}" x2="{left + plot_w:.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}" '
                     f'stroke-width="1"/>')
        parts.append(f'<text x="{left - 6:.1f}" y="{y + 4:.1f}" font-size="12" text-anchor="end" fill="{TEXT}" '
                     f'{FONT}>{escape(fmt(v))}</text>')
    if unit:
        parts.append(f'<text x="4" y="{top - 10:.1f}" font-size="12" text-anchor="start" fill="{TEXT}" '
                     f'{FONT}>{escape(unit)}</text>')
    return "".join(parts)


def line_chart(spec: dict[str, Any], chart_id: str, title: str, desc: str, width: int = 760,
               height: int = 300) -> Markup:
    cats = list(spec.get("categories", []))
    series = spec.get("series", [])
    left, top, right = 56, 24, 16
    plot_w = width - left - right
    legend, legend_bottom = _legend(series, left, height - 8 - 20 * ((len(series) - 1) // 5), plot_w)
    plot_h = height - top - 60 - 20 * ((len(series) - 1) // 5)
    vmax = axis_max(spec)
    parts = [_y_axis(left, top, plot_w, plot_h, vmax, spec.get("unit", ""))]
    n = max(1, len(cats) - 1)
    step = max(1, math.ceil(len(cats) / 8))
    for i, c in enumerate(cats):
        if (len(cats) - 1 - i) % step == 0:  # evenly spaced, the latest always labelled
            x = left + plot_w * i / n
            anchor = "end" if i == len(cats) - 1 and i else "start" if i == 0 else "middle"
            parts.append(f'<text x="{x:.1f}" y="{top + plot_h + 18:.1f}" font-size="12" text-anchor="{anchor}" '
                         f'fill="{TEXT}" {FONT}>{escape(str(c)[-5:] if len(str(c)) == 10 else c)}</text>')
    for si, s in enumerate(series):
        color = PALETTE[si % len(PALETTE)]
        segment: list[str] = []
        paths: list[list[str]] = [segment]
        for i, v in enumerate(s.get("values", [])):
            if v is None:
                segment = []
                paths.append(segment)
                continue
            x = left + (plot_w * i / n if len(cats) > 1 else plot_w / 2)
            y = top + plot_h - plot_h * (v / vmax)
            segment.append(f"{x:.1f},{y:.1f}")
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"><title>{escape(s["name"])}, '
                         f'{escape(str(cats[i]))}: {escape(fmt(v))}</title></circle>')
        for pts in paths:
            if len(pts) > 1:
                parts.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="{color}" stroke-width="2.5"/>')
    parts.append(legend)
    return _frame(chart_id, title, desc, width, height, "".join(parts))


def bar_chart(spec: dict[str, Any], chart_id: str, title: str, desc: str, width: int = 760,
              height: int = 300) -> Markup:
    cats = list(spec.get("categories", []))
    series = spec.get("series", [])
    left, top, right = 56, 24, 16
    plot_w = width - left - right
    rows = (len(series) - 1) // 5
    legend, _ = _legend(series, left, height - 8 - 20 * rows, plot_w)
    plot_h = height - top - 60 - 20 * rows
    vmax = axis_max(spec)
    parts = [_y_axis(left, top, plot_w, plot_h, vmax, spec.get("unit", ""))]
    group_w = plot_w / max(1, len(cats))
    bar_w = group_w * 0.8 / max(1, len(series))
    for ci, c in enumerate(cats):
        gx = left + group_w * ci + group_w * 0.1
        label = str(c)
        parts.append(f'<text x="{left + group_w * (ci + .5):.1f}" y="{top + plot_h + 18:.1f}" font-size="12" '
                     f'text-anchor="middle" fill="{TEXT}" {FONT}>{escape(label[:18])}</text>')
        for si, s, v in _values_at(series, ci):
            h = plot_h * (v / vmax)
            x = gx + bar_w * si
            parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{max(1.0, bar_w - 2):.1f}" '
                         f'height="{h:.1f}" fill="{PALETTE[si % len(PALETTE)]}"><title>{escape(s["name"])}, '
                         f'{escape(label)}: {escape(fmt(v))}</title></rect>')
    if len(series) > 1:
        parts.append(legend)
    return _frame(chart_id, title, desc, width, height, "".join(parts))


def _values_at(series: list[dict[str, Any]], ci: int) -> Iterator[tuple[int, dict[str, Any], float]]:
    """(series index, series, value) of category ``ci``, for the series that have a value there."""
    for si, s in enumerate(series):
        vals = s.get("values", [])
        v = vals[ci] if ci < len(vals) else None
        if v is not None:
            yield si, s, v


def hbar_chart(spec: dict[str, Any], chart_id: str, title: str, desc: str, width: int = 760) -> Markup:
    cats = list(spec.get("categories", []))
    series = spec.get("series", [])
    label_w, top, right = 230, 16, 60
    bar_h = 14
    group_h = bar_h * len(series) + 10
    legend_rows = 1 + (len(series) - 1) // 5 if len(series) > 1 else 0
    height = int(top + group_h * max(1, len(cats)) + 24 + 20 * legend_rows)
    plot_w = width - label_w - right
    vmax = axis_max(spec)
    parts = []
    d = divisions(vmax)
    for i in range(d + 1):
        x = label_w + plot_w * i / d
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top:.1f}" y2="{top + group_h * max(1, len(cats)):.1f}" '
                     f'stroke="{GRID}" stroke-width="1"/>')
        parts.append(f'<text x="{x:.1f}" y="{top + group_h * max(1, len(cats)) + 16:.1f}" font-size="12" '
                     f'text-anchor="middle" fill="{TEXT}" {FONT}>{escape(fmt(vmax * i / d))}</text>')
    for ci, c in enumerate(cats):
        gy = top + group_h * ci + 5
        label = str(c)
        short = label if len(label) <= 32 else label[:31] + "…"
        parts.append(f'<text x="{label_w - 8}" y="{gy + group_h / 2:.1f}" font-size="12" text-anchor="end" '
                     f'fill="{TEXT}" {FONT}><title>{escape(label)}</title>{escape(short)}</text>')
        for si, s, v in _values_at(series, ci):
            w = plot_w * (v / vmax)
            y = gy + bar_h * si
            parts.append(f'<rect x="{label_w}" y="{y:.1f}" width="{max(1.0, w):.1f}" height="{bar_h - 2}" '
                         f'fill="{PALETTE[si % len(PALETTE)]}"><title>{escape(s["name"])}, {escape(label)}: '
                         f'{escape(fmt(v))}</title></rect>'
                         f'<text x="{label_w + max(1.0, w) + 4:.1f}" y="{y + bar_h - 3:.1f}" font-size="11" '
                         f'fill="{TEXT}" {FONT}>{escape(fmt(v))}</text>')
    if legend_rows:
        legend, _ = _legend(series, label_w, height - 6 - 20 * (legend_rows - 1), plot_w)
        parts.append(legend)
    return _frame(chart_id, title, desc, width, height, "".join(parts))


def render_chart(spec: dict[str, Any], chart_id: str, title: str, desc: str) -> Markup:
    if not spec.get("categories") or not _values(spec):
        return Markup('<p class="muted chart-empty">{}</p>').format("Sin datos para graficar en este período.")
    kind = spec.get("type", "bar")
    if kind == "line":
        return line_chart(spec, chart_id, title, desc)
    if kind == "hbar":
        return hbar_chart(spec, chart_id, title, desc)
    return bar_chart(spec, chart_id, title, desc)
