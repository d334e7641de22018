"""Server-rendered SVG line charts for the trend panels (no JavaScript, so nothing can
break under the strict Content-Security-Policy, and the charts print and work offline).

:func:`plot` turns a chart's data (``dashboard.history.trends.chart``) into geometry
that ``templates/history/_chart.html`` draws: polylines in a fixed viewBox, y ticks
from zero to a rounded maximum, x ticks as UTC times, and a legend with last values.
A gap in sampling (the dashboard was stopped) breaks the line instead of bridging it.
"""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime
from typing import Any

from dashboard.web.filters import human_bytes, number, percent

WIDTH, HEIGHT = 460, 190
LEFT, RIGHT, TOP, BOTTOM = 74, 10, 12, 26
GAP_FACTOR = 3.0  # a step this many times the usual one is a gap


def fmt(value: float | None, unit: str) -> str:
    """A value as the chart's unit reads (bytes, %, /s, s, a count)."""
    if value is None:
        return "—"
    if unit == "bytes":
        return human_bytes(value)
    if unit == "ratio":
        return percent(value)
    if unit == "per_s":
        return f"{value:,.1f}/s" if value < 100 else f"{value:,.0f}/s"
    if unit == "seconds":
        return f"{value:,.0f} s" if value >= 10 else f"{value:.1f} s"
    return number(round(value, 1) if abs(value) < 100 else round(value))


def nice_ceiling(value: float) -> float:
    """1, 2, 2.5 or 5 times a power of ten, at least ``value`` (axes end on round numbers)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def _time_label(t: float, span: float) -> str:
    moment = datetime.fromtimestamp(t, tz=UTC)
    if span <= 86400:
        return moment.strftime("%H:%M")
    return moment.strftime("%b %d %H:%M" if span <= 4 * 86400 else "%b %d")


def _segments(points: list[list[float]], x: Any, y: Any) -> list[str]:
    steps = sorted(b[0] - a[0] for a, b in itertools.pairwise(points))
    usual = steps[len(steps) // 2] if steps else 0
    runs: list[list[str]] = [[]]
    for i, (t, v) in enumerate(points):
        if i and usual and t - points[i - 1][0] > usual * GAP_FACTOR:
            runs.append([])
        runs[-1].append(f"{x(t):.1f},{y(v):.1f}")
    return [" ".join(run) for run in runs if run]


def plot(chart: dict[str, Any]) -> dict[str, Any]:
    """Geometry for one chart (see the module docstring)."""
    unit = chart["unit"]
    lines = [s for s in chart["series"] if s["points"]]
    legend = [
        {"name": s["name"], "last": fmt(s["last"], unit), "index": i}
        for i, s in enumerate(chart["series"])
    ]
    base = {"width": WIDTH, "height": HEIGHT, "legend": legend, "unit": unit}
    if chart["empty"] or not lines:
        return base | {"empty": True, "lines": [], "yticks": [], "xticks": [], "label": ""}
    times = [p[0] for s in lines for p in s["points"]]
    values = [p[1] for s in lines for p in s["points"]]
    t0, t1 = min(times), max(times)
    span = max(t1 - t0, 1.0)
    low = min(0.0, min(values))
    high = 1.0 if unit == "ratio" and max(values) <= 1 else nice_ceiling(max(values))
    if high <= low:
        high = low + 1
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + (t - t0) / span * inner_w

    def y(v: float) -> float:
        return TOP + inner_h - (v - low) / (high - low) * inner_h

    yticks = [{"y": round(y(v), 1), "label": fmt(v, unit)} for v in (low, (low + high) / 2, high)]
    xticks = [
        {"x": round(x(t), 1), "label": _time_label(t, span), "anchor": anchor}
        for t, anchor in ((t0, "start"), (t0 + span / 2, "middle"), (t1, "end"))
    ]
    drawn = []
    for i, s in enumerate(chart["series"]):
        if not s["points"]:
            continue
        last_t, last_v = s["points"][-1]
        drawn.append(
            {
                "index": i,
                "segments": _segments(s["points"], x, y),
                "last": {"x": round(x(last_t), 1), "y": round(y(last_v), 1)},
                "title": f"{s['name']}: {fmt(last_v, unit)} at {_time_label(last_t, 0)} UTC",
            }
        )
    label = f"{chart['title']}: " + "; ".join(
        f"{s['name']} {fmt(s['min'], unit)} to {fmt(s['max'], unit)}, now {fmt(s['last'], unit)}"
        for s in lines
    )
    return base | {
        "empty": False,
        "lines": drawn,
        "yticks": yticks,
        "xticks": xticks,
        "label": label,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "bottom": HEIGHT - BOTTOM,
    }
