"""Reading the state store: plain data for the views, the compare and the CLI.

Every function takes a :class:`~dashboard.history.store.Store` and runs on its
read-only connection; none writes.
"""

from __future__ import annotations

import json
from typing import Any

from dashboard.history.store import Store

SCAN_FIELDS = (
    "id, scan_id, finished_at, started_at, duration_s, reason, source, scanned, keys, bytes, "
    "with_ttl, without_ttl, namespaces, folded_keys, estimated, path, settings, recorded, "
    "min_recorded_bytes, top_keys, audit"
)


def coverage(with_ttl: int | None, without_ttl: int | None) -> float | None:
    """Share of keys with a TTL (None when no key's TTL is known)."""
    known = (with_ttl or 0) + (without_ttl or 0)
    return round((with_ttl or 0) / known, 4) if known else None


def _scan(row: Any) -> dict[str, Any]:
    audit = json.loads(row["audit"]) if row["audit"] else None
    return {
        "row": row["id"],
        "id": row["scan_id"],
        "finished_at": row["finished_at"],
        "started_at": row["started_at"],
        "duration_s": row["duration_s"],
        "reason": row["reason"],
        "source": row["source"],
        "scanned": row["scanned"],
        "keys": row["keys"],
        "bytes": row["bytes"],
        "with_ttl": row["with_ttl"],
        "without_ttl": row["without_ttl"],
        "ttl_coverage": coverage(row["with_ttl"], row["without_ttl"]),
        "namespaces": row["namespaces"],
        "folded_keys": row["folded_keys"],
        "estimated": bool(row["estimated"]),
        "path": row["path"],
        "settings": json.loads(row["settings"] or "{}"),
        "recorded_namespaces": row["recorded"],
        "min_recorded_bytes": row["min_recorded_bytes"],
        "top_keys": [
            dict(zip(("key", "id", "type", "bytes", "ttl_ms"), k, strict=False))
            for k in json.loads(row["top_keys"] or "[]")
        ],
        "audit": None if audit is None else audit.get("summary"),
        "audit_rules": []
        if audit is None
        else [
            dict(zip(("id", "severity", "status", "findings"), r, strict=False))
            for r in audit.get("rules", [])
        ],
    }


def scans(store: Store, limit: int = 500, since: float | None = None) -> list[dict[str, Any]]:
    """Stored scans, newest first."""
    where, params = ("WHERE finished_at >= ?", [since]) if since is not None else ("", [])
    rows = store.query(
        f"SELECT {SCAN_FIELDS} FROM scans {where} ORDER BY finished_at DESC, id DESC LIMIT ?",  # noqa: S608 - constant fields
        [*params, limit],
    )
    return [_scan(r) for r in rows]


def scan(store: Store, scan_id: str) -> dict[str, Any] | None:
    rows = store.query(f"SELECT {SCAN_FIELDS} FROM scans WHERE scan_id = ?", [scan_id])  # noqa: S608
    return _scan(rows[0]) if rows else None


def namespaces(store: Store, scan_row: int) -> dict[str, dict[str, Any]]:
    """A scan's recorded namespaces by address."""
    rows = store.query(
        "SELECT n.address, n.path, n.kind, p.address AS parent, s.depth, s.keys, s.bytes, "
        "s.with_ttl, s.without_ttl, s.types, s.top FROM scan_namespaces s "
        "JOIN namespaces n ON n.id = s.ns LEFT JOIN namespaces p ON p.id = s.parent "
        "WHERE s.scan = ?",
        [scan_row],
    )
    out = {}
    for r in rows:
        out[r["address"]] = {
            "address": r["address"],
            "path": r["path"],
            "kind": r["kind"],
            "parent": r["parent"],
            "depth": r["depth"],
            "keys": r["keys"],
            "bytes": r["bytes"],
            "with_ttl": r["with_ttl"],
            "without_ttl": r["without_ttl"],
            "ttl_coverage": coverage(r["with_ttl"], r["without_ttl"]),
            "types": {t: {"keys": v[0], "bytes": v[1]} for t, v in json.loads(r["types"]).items()},
            "top_keys": [
                dict(zip(("key", "id", "type", "bytes"), k, strict=False))
                for k in json.loads(r["top"] or "[]")
            ],
        }
    return out


def findings(store: Store, scan_row: int) -> list[dict[str, Any]]:
    rows = store.query(
        "SELECT f.rule, f.severity, f.subject, f.subject_kind, f.title, s.message "
        "FROM scan_findings s JOIN findings f ON f.id = s.finding WHERE s.scan = ? "
        "ORDER BY f.rule, f.subject",
        [scan_row],
    )
    return [dict(r) for r in rows]


def namespace_trend(store: Store, address: str | None, since: float) -> list[dict[str, Any]]:
    """Keys, bytes and TTL coverage of one namespace (None: the whole keyspace) per scan."""
    if address is None:
        rows = store.query(
            "SELECT scan_id, finished_at, keys, bytes, with_ttl, without_ttl FROM scans "
            "WHERE finished_at >= ? ORDER BY finished_at",
            [since],
        )
    else:
        rows = store.query(
            "SELECT c.scan_id, c.finished_at, s.keys, s.bytes, s.with_ttl, s.without_ttl "
            "FROM scans c JOIN scan_namespaces s ON s.scan = c.id "
            "AND s.ns = (SELECT id FROM namespaces WHERE address = ?) "
            "WHERE c.finished_at >= ? ORDER BY c.finished_at",
            [address, since],
        )
    return [
        {
            "scan_id": r["scan_id"],
            "t": r["finished_at"],
            "keys": r["keys"],
            "bytes": r["bytes"],
            "ttl_coverage": coverage(r["with_ttl"], r["without_ttl"]),
        }
        for r in rows
    ]


def children(store: Store, scan_row: int, parent: str | None) -> dict[str, dict[str, Any]]:
    """The namespaces directly below ``parent`` (None: the top level) in one scan."""
    rows = namespaces(store, scan_row)
    return {a: r for a, r in rows.items() if r["parent"] == parent}


def series_labels(store: Store, metric: str) -> list[dict[str, str]]:
    rows = store.query("SELECT labels FROM series WHERE metric = ?", [metric])
    return [json.loads(r["labels"]) if r["labels"] else {} for r in rows]


def series(
    store: Store, metric: str, since: float, labels: str = ""
) -> tuple[str, list[tuple[int, float]]]:
    """``(kind, [(ts, value)])`` of one series since ``since`` (labels: stored JSON text)."""
    found = store.query(
        "SELECT id, kind FROM series WHERE metric = ? AND labels = ?",
        [
            metric,
            labels,
        ],
    )
    if not found:
        return "gauge", []
    rows = store.query(
        "SELECT ts, value FROM samples WHERE series = ? AND ts >= ? ORDER BY ts",
        [found[0]["id"], int(since)],
    )
    return found[0]["kind"], [(r["ts"], r["value"]) for r in rows]


def latest_series(store: Store, metric: str, since: float) -> dict[str, float]:
    """The last value of every labelled series of ``metric`` since ``since``, by labels."""
    rows = store.query(
        "SELECT r.labels, s.value, MAX(s.ts) FROM series r JOIN samples s ON s.series = r.id "
        "WHERE r.metric = ? AND s.ts >= ? GROUP BY r.id",
        [metric, int(since)],
    )
    return {r["labels"]: r["value"] for r in rows}


def counts(store: Store) -> dict[str, Any]:
    row = store.query(
        "SELECT (SELECT COUNT(*) FROM scans) AS scans, (SELECT COUNT(*) FROM samples) AS samples, "
        "(SELECT COUNT(*) FROM series) AS series, (SELECT MIN(ts) FROM samples) AS first_sample, "
        "(SELECT MAX(ts) FROM samples) AS last_sample, "
        "(SELECT MIN(finished_at) FROM scans) AS first_scan"
    )[0]
    return dict(row)


def namespace_path(store: Store, address: str) -> str | None:
    """The display path of a stored namespace address (None: never recorded)."""
    rows = store.query("SELECT path FROM namespaces WHERE address = ?", [address])
    return rows[0]["path"] if rows else None
