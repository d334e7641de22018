"""Prometheus metrics (text exposition format 0.0.4) from the observer's picture.

Nothing here talks to Redis: every number comes from what the observer last read (the
last finished scan and audit, the live sections' last readings, the server overview)
and from the history store's status. A scrape therefore costs Redis nothing, however
often Prometheus asks; numbers are as fresh as the observer's readings, which the
``redis_dashboard_reading_age_seconds`` and ``redis_dashboard_scan_age_seconds`` gauges
tell. Metric names and labels are listed in docs/metrics.md.

Label cardinality is bounded: namespaces (top level of the rollup) and stream groups
get their own series for the ``metrics_top_n`` biggest (by bytes; by lag), and the
rest are summed into one series labelled ``(other)``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dashboard import __version__

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "redis_dashboard_"
OTHER = "(other)"
MAX_ERROR_LABEL = 200
# Every metric: its type and help text (docs/metrics.md lists them with their labels).
METRICS: dict[str, tuple[str, str]] = {
    "build_info": ("gauge", "The dashboard's version."),
    "up": ("gauge", "1 when the observer's last reading of the server succeeded (cf. redis_up)."),
    "reading_age_seconds": ("gauge", "Age of the observer's last good reading."),
    "reading_duration_seconds": ("gauge", "How long the last refresh took."),
    "reading_failures": ("gauge", "Failed refreshes in a row (0: the last one worked)."),
    "last_error": ("gauge", "1 for a reading whose last refresh failed, with the error."),
    "scan_running": ("gauge", "1 while a keyspace scan runs."),
    "scan_timestamp_seconds": ("gauge", "Unix time the last keyspace scan finished."),
    "scan_age_seconds": ("gauge", "Seconds since the last keyspace scan finished."),
    "scan_duration_seconds": ("gauge", "How long the last keyspace scan took."),
    "scan_keys": ("gauge", "Keys the last scan visited."),
    "scan_estimated": ("gauge", "1 when the last scan was sampled (numbers are estimates)."),
    "keyspace_keys": ("gauge", "Keys in the last scan."),
    "keyspace_memory_bytes": ("gauge", "MEMORY USAGE summed over the last scan."),
    "keyspace_keys_without_ttl": ("gauge", "Keys without a TTL in the last scan."),
    "namespaces_in_other": (
        "gauge",
        'Top-level namespaces past metrics_top_n, summed into namespace="(other)".',
    ),
    "namespace_keys": ("gauge", "Keys per top-level namespace (last scan)."),
    "namespace_memory_bytes": ("gauge", "Bytes per top-level namespace (last scan)."),
    "namespace_keys_without_ttl": ("gauge", "Keys without a TTL per top-level namespace."),
    "audit_findings": ("gauge", "Audit findings of the last scan by rule and severity."),
    "streams": ("gauge", "Streams found (SCAN TYPE stream, up to max_streams)."),
    "stream_group_lag": ("gauge", "Entries not yet delivered to a consumer group."),
    "stream_group_pending": ("gauge", "Entries delivered to a group and not acknowledged."),
    "ratelimit_limiters": ("gauge", "Rate limiters found (layout, name, limit, window)."),
    "ratelimit_identities": ("gauge", "Rate-limiter keys found (one per limited identity)."),
    "ratelimit_blocked": ("gauge", "Identities a hit would be refused for now."),
    "locks_held": ("gauge", "Locks held now."),
    "locks_held_forever": ("gauge", "Held locks without a TTL."),
    "locks_unusually_long": ("gauge", "Locks held unusually long."),
    "locks_contended": ("gauge", "Locks with failed acquire attempts."),
    "server_memory_used_bytes": ("gauge", "Memory used (INFO used_memory)."),
    "server_memory_max_bytes": ("gauge", "maxmemory; 0 = no limit."),
    "server_connected_clients": ("gauge", "Client connections."),
    "server_blocked_clients": ("gauge", "Clients in a blocking call."),
    "server_ops_per_second": ("gauge", "Commands per second."),
    "server_keys": ("gauge", "Keys in all databases."),
    "server_keyspace_hits_total": ("counter", "Key lookups that hit."),
    "server_keyspace_misses_total": ("counter", "Key lookups that missed."),
    "server_evicted_keys_total": ("counter", "Keys evicted by maxmemory."),
    "server_expired_keys_total": ("counter", "Keys removed by TTL."),
    "history_enabled": ("gauge", "1 when history is kept (0: --no-state)."),
    "history_in_memory": ("gauge", "1 when the state file could not be used (see /history)."),
    "history_size_bytes": ("gauge", "Size of the state file (WAL included)."),
    "history_write_errors_total": ("counter", "Failed writes to the state store."),
    "history_dropped_total": ("counter", "Writes dropped because the writer fell behind."),
    "scrapes_total": ("counter", "Times /metrics was served by this process."),
    "scrape_duration_seconds": ("gauge", "Time taken to build this answer."),
}
SERVER_FACTS = (  # metric, overview panel, field
    ("server_memory_used_bytes", "memory", "used"),
    ("server_memory_max_bytes", "memory", "max"),
    ("server_connected_clients", "clients", "connected"),
    ("server_blocked_clients", "clients", "blocked"),
    ("server_ops_per_second", "stats", "ops_per_sec"),
    ("server_keys", "keyspace", "total_keys"),
    ("server_keyspace_hits_total", "stats", "keyspace_hits"),
    ("server_keyspace_misses_total", "stats", "keyspace_misses"),
    ("server_evicted_keys_total", "stats", "evicted_keys"),
    ("server_expired_keys_total", "stats", "expired_keys"),
)
LIVE_TOTALS = {
    "ratelimits": ("ratelimit_", ("limiters", "identities", "blocked")),
    "locks": ("locks_", ("held", "held_forever", "unusually_long", "contended")),
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


@dataclass
class Family:
    name: str
    kind: str
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)


class Exposition:
    """Metric families in the order first added, rendered as the text format."""

    def __init__(self) -> None:
        self.families: dict[str, Family] = {}

    def add(self, name: str, value: Any, **labels: Any) -> None:
        """One sample of metric ``name`` (a key of :data:`METRICS`); None is skipped."""
        if value is None:
            return
        kind, help_text = METRICS[name]
        family = self.families.setdefault(name, Family(PREFIX + name, kind, help_text))
        family.samples.append(({k: str(v) for k, v in labels.items()}, float(value)))

    def render(self) -> str:
        lines = []
        for f in self.families.values():
            lines.append(f"# HELP {f.name} {f.help}")
            lines.append(f"# TYPE {f.name} {f.kind}")
            for labels, value in f.samples:
                text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
                number = str(int(value)) if value.is_integer() else repr(round(value, 6))
                lines.append(f"{f.name}{{{text}}} {number}" if text else f"{f.name} {number}")
        return "\n".join(lines) + "\n"


def _sum(values: list[float | None]) -> float | None:
    """The sum, or None when a part is unknown (bytes without MEMORY USAGE): a metric
    that is not known is left out, never reported as a made-up number."""
    return None if any(v is None for v in values) else sum(values)  # type: ignore[arg-type]


def top_n(rows: list[tuple[str, dict[str, float]]], n: int) -> list[tuple[str, dict[str, float]]]:
    """The first ``n`` named rows (already ranked) and one ``(other)`` row summing the
    rest, the rollup's own ``(other)`` (namespaces past its cap) included."""
    named = [r for r in rows if r[0] != OTHER]
    kept, rest = named[:n], named[n:] + [r for r in rows if r[0] == OTHER]
    if rest:
        keys = rest[0][1].keys()
        kept.append((OTHER, {k: _sum([v[k] for _, v in rest]) for k in keys}))
    return kept


# --- one target --------------------------------------------------------------------


def _health(out: Exposition, target: str, observer: Any, now: float) -> None:
    status = observer.status()
    sections = status["sections"]
    overview = next((s for s in sections if s["section"] == "overview"), None)
    cycle = status["keyspace"]
    if overview is not None and overview["generation"]:
        up = 0 if overview["error"] else 1
    else:
        up = 0 if (cycle["state"] == "failed" and cycle["scan_id"] is None) else 1
    out.add("up", up, target=target)
    for s in sections:
        labels = {"target": target, "section": s["section"]}
        if s["as_of"] is not None:
            out.add("reading_age_seconds", round(now - s["as_of"], 3), **labels)
        if s["read_ms"] is not None:
            out.add("reading_duration_seconds", s["read_ms"] / 1000, **labels)
        out.add("reading_failures", s["failures"], **labels)
        if s["error"]:
            out.add("last_error", 1, **labels, error=s["error"][:MAX_ERROR_LABEL])


def _scan(
    out: Exposition, target: str, picture: dict | None, cycle: dict, now: float, n: int
) -> None:
    out.add("scan_running", int(cycle["state"] == "running"), target=target)
    if picture is None:
        return
    scan, tree = picture["scan"], picture["result"]["tree"]
    finished = scan.get("finished_at") or 0
    for name, value in (
        ("scan_timestamp_seconds", finished),
        ("scan_age_seconds", round(max(0.0, now - finished), 3)),
        ("scan_duration_seconds", scan.get("duration_s")),
        ("scan_keys", scan.get("scanned")),
        ("scan_estimated", int(bool(picture["result"].get("estimated")))),
        ("keyspace_keys", tree["keys"]),
        ("keyspace_memory_bytes", tree["bytes"]),
        ("keyspace_keys_without_ttl", tree["ttl"]["without_ttl"]),
    ):
        out.add(name, value, target=target)
    rows = [
        (
            c.get("path") or c["name"],
            {
                "keys": c["keys"],
                "memory_bytes": c["bytes"],
                "keys_without_ttl": c["ttl"]["without_ttl"],
            },
        )
        for c in sorted(tree["children"], key=lambda c: -(c["bytes"] or 0))  # None: unknown
    ]
    named = sum(1 for r in rows if r[0] != OTHER)
    out.add("namespaces_in_other", max(0, named - n), target=target)
    for name, values in top_n(rows, n):
        for field_name, value in values.items():
            out.add("namespace_" + field_name, value, target=target, namespace=name)
    _audit(out, target, picture.get("audit"))


def _audit(out: Exposition, target: str, report: dict | None) -> None:
    if not report:
        return
    counts: dict[tuple[str, str], int] = {}
    for rule in report.get("rules", []):
        if rule["status"] in ("ok", "findings"):
            counts[(rule["id"], rule["severity"])] = 0
    for f in report.get("findings", []):
        counts[(f["rule"], f["severity"])] = counts.get((f["rule"], f["severity"]), 0) + 1
    severity = {r["id"]: r["severity"] for r in report.get("rules", [])}
    for omitted in report.get("omitted", []):
        key = (omitted["rule"], severity.get(omitted["rule"], "warning"))
        counts[key] = counts.get(key, 0) + omitted["findings"]
    for (rule, sev), count in sorted(counts.items()):
        out.add("audit_findings", count, target=target, rule=rule, severity=sev)


def _streams(out: Exposition, target: str, reading: dict | None, n: int) -> None:
    if reading is None:
        return
    streams = [s for s in reading.get("streams") or [] if not s.get("error")]
    out.add("streams", len(streams), target=target)
    rows = [
        ((s["key"], g["name"]), {"lag": g.get("lag") or 0, "pending": g.get("pending") or 0})
        for s in streams
        for g in s.get("groups") or []
    ]
    rows.sort(key=lambda r: (-r[1]["lag"], -r[1]["pending"], r[0]))
    kept = rows[:n]
    if len(rows) > n:
        rest = rows[n:]
        kept.append(((OTHER, OTHER), {k: sum(v[k] for _, v in rest) for k in ("lag", "pending")}))
    for (stream, group), values in kept:
        for name, value in values.items():
            out.add("stream_group_" + name, value, target=target, stream=stream, group=group)


def _live(out: Exposition, target: str, kind: str, reading: dict | None, settings: Any) -> None:
    if reading is None:
        return
    from dashboard.inspect.live.state import lock_view, ratelimit_view

    shape = ratelimit_view if kind == "ratelimits" else lock_view
    totals = shape(reading, settings)["totals"]
    prefix, names = LIVE_TOTALS[kind]
    for name in names:
        out.add(prefix + name, totals.get(name), target=target)


def _server(out: Exposition, target: str, overview: dict | None) -> None:
    if overview is None:
        return
    for name, panel, key in SERVER_FACTS:
        values = overview.get(panel) or {}
        if values.get("available", True):
            out.add(name, values.get(key), target=target)


def _history(out: Exposition, target: str, status: dict[str, Any]) -> None:
    out.add("history_enabled", int(status["enabled"]), target=target)
    if not status["enabled"]:
        return
    out.add("history_in_memory", int(status["mode"] == "memory"), target=target)
    out.add("history_size_bytes", status["size_bytes"], target=target)
    out.add("history_write_errors_total", status["write_errors"], target=target)
    out.add("history_dropped_total", status["dropped"], target=target)


def collect(
    out: Exposition,
    target: str,
    observer: Any,
    settings: Any,
    history_status: dict[str, Any],
    now: float | None = None,
) -> None:
    """Add one target's metrics, read from its observer's picture (no Redis command)."""
    now = time.time() if now is None else now
    n = settings.metrics_top_n
    if observer is None:  # no observer: the target's URL or client is broken
        out.add("up", 0, target=target)
        error = history_status.get("error") or "no observer"
        out.add("last_error", 1, target=target, section="client", error=error[:MAX_ERROR_LABEL])
        return
    _health(out, target, observer, now)
    picture, cycle = observer.scan_picture()
    _scan(out, target, picture, cycle, now, n)
    _streams(out, target, observer.section("streams").current()[0], n)
    for kind in LIVE_TOTALS:
        _live(out, target, kind, observer.section(kind).current()[0], settings)
    _server(out, target, observer.section("overview").current()[0])
    _history(out, target, history_status)


def exposition(targets: Iterable[tuple[str, Any, Any, dict[str, Any]]], scrapes: int) -> str:
    """The whole answer: every target's metrics, then the exporter's own."""
    started = time.perf_counter()
    out = Exposition()
    out.add("build_info", 1, version=__version__)
    for name, observer, settings, status in targets:
        collect(out, name, observer, settings, status)
    out.add("scrapes_total", scrapes)
    out.add("scrape_duration_seconds", round(time.perf_counter() - started, 6))
    return out.render()
