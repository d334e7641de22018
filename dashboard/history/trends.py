"""Chart data for the trend panels: plain data the JSON twins carry and the SVG draws.

A chart is ``{"id", "title", "unit", "series": [{"name", "points": [[t, v], ...],
"last", "min", "max"}]}``; ``unit`` is ``bytes``, ``count``, ``per_s``, ``ratio`` or
``seconds``. Points are bucketed to at most :data:`MAX_POINTS` per series (the mean of
each bucket), so a chart and its twin show the same numbers whatever the range.
Counters (hits, evictions...) are shown as per-second rates between samples; a
counter that went down (a server restart) starts a new run instead of a negative rate.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from typing import Any

from dashboard.history import queries
from dashboard.history.store import Store

RANGES = {"1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
MAX_POINTS = 240
MOVERS = 10
MOVER_SERIES = 5
GROUP_SERIES = 6

Points = list[list[float]]


def range_seconds(name: str | None, default: str) -> tuple[str, int]:
    """``(name, seconds)`` of a ``?range=`` value; ValueError for an unknown one."""
    name = name or default
    if name not in RANGES:
        raise ValueError(f"range must be one of {', '.join(RANGES)}")
    return name, RANGES[name]


def bucket(points: Sequence[Sequence[float]], since: float, until: float) -> Points:
    """At most MAX_POINTS points: the mean time and value of each time bucket."""
    if len(points) <= MAX_POINTS:
        return [[float(t), float(v)] for t, v in points]
    width = max((until - since) / MAX_POINTS, 1e-9)
    sums: dict[int, list[float]] = {}
    for t, v in points:
        acc = sums.setdefault(int((t - since) // width), [0.0, 0.0, 0])
        acc[0] += t
        acc[1] += v
        acc[2] += 1
    return [[s[0] / s[2], s[1] / s[2]] for _, s in sorted(sums.items())]


def rates(points: Sequence[Sequence[float]]) -> Points:
    """Per-second rates of a counter between consecutive samples (resets skipped)."""
    out = []
    for (t0, v0), (t1, v1) in itertools.pairwise(points):
        if t1 > t0 and v1 >= v0:
            out.append([float(t1), (v1 - v0) / (t1 - t0)])
    return out


def ratios(hits: Sequence[Sequence[float]], misses: Sequence[Sequence[float]]) -> Points:
    """Hit ratio per interval, from the hit and miss counters sampled together."""
    by_time = {t: v for t, v in misses}
    paired = [(t, h, by_time[t]) for t, h in hits if t in by_time]
    out = []
    for (_, h0, m0), (t1, h1, m1) in itertools.pairwise(paired):
        dh, dm = h1 - h0, m1 - m0
        if dh >= 0 and dm >= 0 and dh + dm > 0:
            out.append([float(t1), dh / (dh + dm)])
    return out


def series(name: str, points: Points, **extra: Any) -> dict[str, Any]:
    values = [v for _, v in points]
    return {
        "name": name,
        "points": points,
        "last": values[-1] if values else None,
        "min": min(values) if values else None,
        "max": max(values) if values else None,
        **extra,
    }


def chart(
    chart_id: str, title: str, unit: str, lines: list[dict[str, Any]], note: str | None = None
) -> dict[str, Any]:
    """``note`` says why a chart may have no data at all (shown instead of the chart)."""
    empty = not any(len(s["points"]) >= 2 for s in lines)
    nothing = not any(s["points"] for s in lines)
    return {
        "id": chart_id,
        "title": title,
        "unit": unit,
        "series": lines,
        "empty": empty,
        "note": note if nothing else None,
    }


def _metric(store: Store, metric: str, since: float, now: float, labels: str = "") -> Points:
    kind, points = queries.series(store, metric, since, labels)
    if kind == "counter":
        points = rates(points)
    return bucket(points, since, now)


# --- the overview: server facts -------------------------------------------------------


def server_trends(store: Store, since: float, now: float) -> list[dict[str, Any]]:
    """Memory, keys, ops/s, clients, hit ratio, evictions/expiries, replication lag."""

    def m(metric: str) -> Points:
        return _metric(store, metric, since, now)

    _, hits = queries.series(store, "keyspace_hits", since)
    _, misses = queries.series(store, "keyspace_misses", since)
    keys, with_ttl = m("keys"), m("keys_with_ttl")
    ttl = {t: v for t, v in with_ttl}
    coverage = [[t, ttl[t] / k] for t, k in keys if k and t in ttl]
    memory = [series("used", m("used_memory_bytes"))]
    limit = m("max_memory_bytes")
    if any(v for _, v in limit):  # 0 means no maxmemory: no line to draw
        memory.append(series("maxmemory", limit))
    return [
        chart("memory", "Memory used", "bytes", memory),
        chart("ops", "Commands per second", "per_s", [series("ops/s", m("ops_per_sec"))]),
        chart(
            "clients",
            "Connected clients",
            "count",
            [series("connected", m("connected_clients")), series("blocked", m("blocked_clients"))],
        ),
        chart(
            "hit_ratio",
            "Hit ratio",
            "ratio",
            [series("hits / lookups", bucket(ratios(hits, misses), since, now))],
        ),
        chart("keys", "Keys", "count", [series("keys", keys), series("with TTL", with_ttl)]),
        chart("ttl_coverage", "TTL coverage (all keys)", "ratio", [series("with TTL", coverage)]),
        chart(
            "evictions",
            "Evicted and expired keys per second",
            "per_s",
            [series("evicted", m("evicted_keys")), series("expired", m("expired_keys"))],
        ),
        chart(
            "replication_lag",
            "Replication lag",
            "seconds",
            [series("lag", m("replication_lag_seconds"))],
            note="no replica attached, and not a replica",
        ),
    ]


# --- the keyspace: namespaces per scan ------------------------------------------------


def _scan_points(rows: list[dict[str, Any]], field: str, since: float, now: float) -> Points:
    return bucket([(r["t"], r[field]) for r in rows if r[field] is not None], since, now)


def movers(store: Store, parent: str | None, since: float) -> list[dict[str, Any]]:
    """The namespaces below ``parent`` that changed most between the first and the last
    scan of the range (by bytes, then keys)."""
    stored = queries.scans(store, limit=100000, since=since)
    if len(stored) < 2:
        return []
    first, last = stored[-1], stored[0]
    before = queries.children(store, first["row"], parent)
    after = queries.children(store, last["row"], parent)
    rows = []
    for address in before.keys() | after.keys():
        a, b = before.get(address), after.get(address)
        either = b or a or {}
        rows.append(
            {
                "namespace": either["path"],
                "id": address if either["kind"] == "namespace" else None,
                "address": address,
                "bytes_first": (a or {}).get("bytes", 0),
                "bytes_last": (b or {}).get("bytes", 0),
                "bytes_delta": (b or {}).get("bytes", 0) - (a or {}).get("bytes", 0),
                "keys_first": (a or {}).get("keys", 0),
                "keys_last": (b or {}).get("keys", 0),
                "keys_delta": (b or {}).get("keys", 0) - (a or {}).get("keys", 0),
                "ttl_coverage_last": (b or {}).get("ttl_coverage"),
            }
        )
    rows.sort(key=lambda r: (-abs(r["bytes_delta"]), -abs(r["keys_delta"]), r["namespace"]))
    return [r for r in rows if r["bytes_delta"] or r["keys_delta"]][:MOVERS]


def keyspace_trends(store: Store, address: str | None, since: float, now: float) -> dict[str, Any]:
    """Keys, bytes and TTL coverage of a namespace (None: everything) per scan, and the
    namespaces below it that moved most, with their own memory and keys over time."""
    rows = queries.namespace_trend(store, address, since)
    moved = movers(store, address, since)
    top = [(m, queries.namespace_trend(store, m["address"], since)) for m in moved[:MOVER_SERIES]]
    return {
        "scans": len(rows),
        "charts": [
            chart(
                "bytes",
                "Memory",
                "bytes",
                [series("bytes", _scan_points(rows, "bytes", since, now))],
            ),
            chart(
                "keys", "Keys", "count", [series("keys", _scan_points(rows, "keys", since, now))]
            ),
            chart(
                "ttl_coverage",
                "TTL coverage",
                "ratio",
                [series("with TTL", _scan_points(rows, "ttl_coverage", since, now))],
            ),
            chart(
                "movers_bytes",
                "Top movers: memory",
                "bytes",
                [series(m["namespace"], _scan_points(t, "bytes", since, now)) for m, t in top],
            ),
            chart(
                "movers_keys",
                "Top movers: keys",
                "count",
                [series(m["namespace"], _scan_points(t, "keys", since, now)) for m, t in top],
            ),
        ],
        "movers": moved,
    }


# --- streams: lag and pending per consumer group --------------------------------------


def stream_trends(store: Store, since: float, now: float) -> dict[str, Any]:
    """Lag and pending over time for the groups lagging most at the end of the range."""
    latest = queries.latest_series(store, "stream_lag", since)
    pending_latest = queries.latest_series(store, "stream_pending", since)
    ranked = sorted(latest.items(), key=lambda item: (-item[1], item[0]))
    groups = []
    for labels, lag in ranked:
        names = json.loads(labels)
        groups.append(
            {
                "stream": names.get("stream"),
                "group": names.get("group"),
                "lag": lag,
                "pending": pending_latest.get(labels),
                "labels": labels,
            }
        )
    shown = groups[:GROUP_SERIES]

    def line(metric: str, g: dict[str, Any]) -> dict[str, Any]:
        points = _metric(store, metric, since, now, g["labels"])
        return series(f"{g['stream']} / {g['group']}", points, stream=g["stream"], group=g["group"])

    charts = [
        chart("lag", "Consumer-group lag", "count", [line("stream_lag", g) for g in shown]),
        chart("pending", "Pending entries", "count", [line("stream_pending", g) for g in shown]),
    ]
    for g in groups:
        del g["labels"]
    return {"charts": charts, "groups": groups}
