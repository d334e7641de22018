"""Rows for the state store: a finished scan (rollup + audit) and a set of samples.

These run on the writer thread (:mod:`dashboard.history.writer`), each inside the
writer's transaction. A scan keeps at most :data:`MAX_NAMESPACES` namespaces, the
biggest by bytes (a parent is never smaller than its child, so the tree stays whole);
the scan row says how many were recorded and the smallest one kept, so a compare can
tell a namespace that vanished from one below the recording cap.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

MAX_NAMESPACES = 2000  # per scan; the biggest by bytes
TOP_KEYS_PER_NAMESPACE = 3  # kept for top-level namespaces only
GAUGE, COUNTER = "gauge", "counter"
SPECIAL = {"root": "(root)", "other": "(other)"}


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def namespace_rows(tree: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node below the root, with its parent's address: the biggest first."""
    rows: list[dict[str, Any]] = []
    stack: list[tuple[dict[str, Any], str | None]] = [(c, None) for c in tree["children"]]
    while stack:
        node, parent = stack.pop()
        address = node.get("id") or SPECIAL.get(node["kind"], node["name"])
        rows.append(
            {
                "address": address,
                "path": node.get("path") or node["name"],
                "kind": node["kind"],
                "parent": parent,
                "depth": node["depth"] or 1,
                "keys": node["keys"],
                "bytes": node["bytes"],
                "with_ttl": node["ttl"]["with_ttl"],
                "without_ttl": node["ttl"]["without_ttl"],
                "types": {t: [v["keys"], v["bytes"]] for t, v in node["types"].items()},
                "top": [
                    [k["key"], k["id"], k["type"], k["bytes"]]
                    for k in node["top_bytes"][:TOP_KEYS_PER_NAMESPACE]
                ]
                if parent is None
                else None,
            }
        )
        stack += [(child, address) for child in node["children"]]
    rows.sort(key=lambda r: (-(r["bytes"] or 0), -r["keys"], r["depth"], r["path"]))
    return rows


def _namespace_ids(conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Ids of the rows' namespaces, adding the new ones (the dictionary is small: it holds
    each namespace once, however many scans saw it)."""
    known = dict(conn.execute("SELECT address, id FROM namespaces").fetchall())
    new = [(r["address"], r["path"], r["kind"]) for r in rows if r["address"] not in known]
    if new:
        conn.executemany("INSERT INTO namespaces(address, path, kind) VALUES (?, ?, ?)", new)
        known = dict(conn.execute("SELECT address, id FROM namespaces").fetchall())
    return known


def record_scan(
    conn: sqlite3.Connection, picture: dict[str, Any], *, source: str = "serve"
) -> int | None:
    """Store one finished scan (a picture: ``scan``, ``result``, ``audit``); its row id,
    or None when that scan id is already stored."""
    scan, result, audit = picture["scan"], picture["result"], picture.get("audit")
    tree = result["tree"]
    rows = namespace_rows(tree)
    kept = rows[:MAX_NAMESPACES]
    names = {r["address"] for r in kept}
    kept = [r for r in kept if r["parent"] is None or r["parent"] in names]
    finished = scan.get("finished_at") or result.get("finished_at")
    audit_json = None
    if audit:
        audit_json = _dumps(
            {
                "summary": audit.get("summary"),
                "rules": [
                    [r["id"], r["severity"], r["status"], r["findings"]]
                    for r in audit.get("rules", [])
                ],
            }
        )
    cursor = conn.execute(
        "INSERT OR IGNORE INTO scans(scan_id, finished_at, started_at, duration_s, reason, "
        "source, scanned, keys, bytes, with_ttl, without_ttl, namespaces, folded_keys, "
        "estimated, path, settings, recorded, min_recorded_bytes, top_keys, audit) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            scan["id"],
            finished,
            scan.get("started_at"),
            scan.get("duration_s"),
            scan.get("reason"),
            source,
            scan.get("scanned"),
            tree["keys"],
            tree["bytes"],
            tree["ttl"]["with_ttl"],
            tree["ttl"]["without_ttl"],
            result["namespaces"],
            result.get("folded_keys", 0),
            int(bool(result.get("estimated"))),
            scan.get("path"),
            _dumps(result.get("settings") or {}),
            len(kept),
            kept[-1]["bytes"] if len(rows) > len(kept) and kept else None,
            _dumps(
                [[k["key"], k["id"], k["type"], k["bytes"], k["ttl_ms"]] for k in tree["top_bytes"]]
            ),
            audit_json,
        ),
    )
    if cursor.rowcount == 0:
        return None
    scan_row = cursor.lastrowid
    ids = _namespace_ids(conn, kept)
    conn.executemany(
        "INSERT INTO scan_namespaces(scan, ns, parent, depth, keys, bytes, with_ttl, "
        "without_ttl, types, top) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                scan_row,
                ids[r["address"]],
                None if r["parent"] is None else ids[r["parent"]],
                r["depth"],
                r["keys"],
                r["bytes"],
                r["with_ttl"],
                r["without_ttl"],
                _dumps(r["types"]),
                None if r["top"] is None else _dumps(r["top"]),
            )
            for r in kept
        ],
    )
    if audit:
        _record_findings(conn, scan_row, audit.get("findings", []))
    return scan_row


def _record_findings(conn: sqlite3.Connection, scan_row: int, findings: list[dict]) -> None:
    def known() -> dict[tuple[str, str, str], int]:
        rows = conn.execute("SELECT rule, subject, severity, id FROM findings").fetchall()
        return {(r[0], r[1], r[2]): r[3] for r in rows}

    ids = known()
    new = {
        (f["rule"], f["subject"], f["severity"]): (f.get("subject_kind"), f.get("title"))
        for f in findings
        if (f["rule"], f["subject"], f["severity"]) not in ids
    }
    if new:
        conn.executemany(
            "INSERT INTO findings(rule, subject, severity, subject_kind, title) "
            "VALUES (?, ?, ?, ?, ?)",
            [(*key, *extra) for key, extra in new.items()],
        )
        ids = known()
    rows = {}
    for f in findings:
        rows.setdefault(ids[(f["rule"], f["subject"], f["severity"])], f.get("message"))
    conn.executemany(
        "INSERT INTO scan_findings(scan, finding, message) VALUES (?, ?, ?)",
        [(scan_row, finding, message) for finding, message in rows.items()],
    )


def series_id(conn: sqlite3.Connection, metric: str, labels: str, kind: str) -> int:
    conn.execute(
        "INSERT OR IGNORE INTO series(metric, labels, kind) VALUES (?, ?, ?)",
        (metric, labels, kind),
    )
    return conn.execute(
        "SELECT id FROM series WHERE metric = ? AND labels = ?", (metric, labels)
    ).fetchone()[0]


def labels_text(labels: dict[str, str] | None) -> str:
    """Labels as stored: canonical JSON (sorted keys), '' for none."""
    return "" if not labels else _dumps(dict(sorted(labels.items())))


def record_samples(
    conn: sqlite3.Connection,
    ts: float,
    samples: Iterable[tuple[str, dict[str, str] | None, str, float | None]],
    cache: dict[tuple[Any, ...], int] | None = None,
) -> int:
    """Store ``(metric, labels, kind, value)`` samples taken at ``ts``; returns how many.
    ``cache`` maps series to ids across calls (the store's; cleared by retention)."""
    cache = {} if cache is None else cache
    rows = []
    for metric, labels, kind, value in samples:
        if value is None:
            continue
        key = (metric, *sorted((labels or {}).items()))
        series = cache.get(key)
        if series is None:
            series = cache[key] = series_id(conn, metric, labels_text(labels), kind)
        rows.append((series, int(ts), float(value)))
    conn.executemany(
        "INSERT OR REPLACE INTO samples(series, ts, value, step) VALUES (?, ?, ?, 0)", rows
    )
    return len(rows)
