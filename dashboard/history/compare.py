"""Two stored scans side by side: what grew, what shrank, what appeared or vanished,
and which audit findings appeared or were resolved.

:func:`diff_scans` is pure (plain data in, plain data out); :func:`compare_stored`
loads the two scans from a store (default: the last two). The web view, its JSON twin
and ``redis-dashboard keyspace --compare`` all use them.
"""

from __future__ import annotations

from typing import Any

from dashboard.history import queries
from dashboard.history.store import Store

PERCENT_BASE_BYTES = 1024 * 1024  # growth in percent counts for namespaces this big


def _delta(a: float | None, b: float | None, digits: int | None = None) -> float | None:
    if a is None or b is None:
        return None
    return b - a if digits is None else round(b - a, digits)


def _status(a: dict[str, Any] | None, b: dict[str, Any] | None, below_cap: bool) -> str:
    if a is None or b is None:
        if below_cap:
            return "not recorded"
        return "appeared" if a is None else "vanished"
    change = _delta(a["bytes"], b["bytes"]) or (b["keys"] - a["keys"])
    return "grown" if change > 0 else "shrunk" if change < 0 else "unchanged"


def _row(
    address: str, a: dict[str, Any] | None, b: dict[str, Any] | None, below_cap: bool
) -> dict[str, Any]:
    either = b or a or {}
    status = _status(a, b, below_cap)
    zero = {"keys": 0, "bytes": 0, "ttl_coverage": None}
    if status in ("appeared", "vanished"):  # absent means zero, not unknown
        a, b = a or zero, b or zero
    a_bytes, b_bytes = (a or {}).get("bytes"), (b or {}).get("bytes")
    bytes_delta = _delta(a_bytes, b_bytes)
    return {
        "namespace": either.get("path"),
        "id": address if either.get("kind") == "namespace" else None,
        "kind": either.get("kind"),
        "depth": either.get("depth"),
        "parent": either.get("parent"),
        "status": status,
        "keys_a": (a or {}).get("keys"),
        "keys_b": (b or {}).get("keys"),
        "keys_delta": _delta((a or {}).get("keys"), (b or {}).get("keys")),
        "bytes_a": a_bytes,
        "bytes_b": b_bytes,
        "bytes_delta": bytes_delta,
        "bytes_percent": round(bytes_delta / a_bytes * 100, 2)
        if bytes_delta is not None and a_bytes
        else None,
        "ttl_coverage_a": (a or {}).get("ttl_coverage"),
        "ttl_coverage_b": (b or {}).get("ttl_coverage"),
        "ttl_coverage_delta": _delta(
            (a or {}).get("ttl_coverage"), (b or {}).get("ttl_coverage"), 4
        ),
        "top_keys_b": (b or {}).get("top_keys") or [],
    }


def _below_cap(scan: dict[str, Any], other: dict[str, Any] | None) -> bool:
    """Missing from ``scan`` only because it recorded the biggest namespaces and no more."""
    floor = scan.get("min_recorded_bytes")
    return (
        floor is not None
        and other is not None
        and other["bytes"] is not None
        and other["bytes"] <= floor
    )


def _finding_key(f: dict[str, Any]) -> tuple[str, str]:
    return f["rule"], f["subject"]


def diff_findings(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> dict[str, Any]:
    """Findings that appeared in ``b``, were resolved since ``a``, or changed severity."""
    old = {_finding_key(f): f for f in a}
    new = {_finding_key(f): f for f in b}
    changed = [
        new[k] | {"severity_a": old[k]["severity"]}
        for k in new.keys() & old.keys()
        if new[k]["severity"] != old[k]["severity"]
    ]
    return {
        "appeared": [new[k] for k in sorted(new.keys() - old.keys())],
        "resolved": [old[k] for k in sorted(old.keys() - new.keys())],
        "changed": sorted(changed, key=_finding_key),
        "unchanged": sum(
            1 for k in new.keys() & old.keys() if new[k]["severity"] == old[k]["severity"]
        ),
    }


def _totals(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return {
        "keys_a": a["keys"],
        "keys_b": b["keys"],
        "keys_delta": b["keys"] - a["keys"],
        "bytes_a": a["bytes"],
        "bytes_b": b["bytes"],
        "bytes_delta": _delta(a["bytes"], b["bytes"]),
        "ttl_coverage_a": a["ttl_coverage"],
        "ttl_coverage_b": b["ttl_coverage"],
        "ttl_coverage_delta": _delta(a["ttl_coverage"], b["ttl_coverage"], 4),
        "namespaces_a": a["namespaces"],
        "namespaces_b": b["namespaces"],
        "seconds_between": round(b["finished_at"] - a["finished_at"], 3),
    }


def diff_scans(
    a: dict[str, Any],
    a_namespaces: dict[str, dict[str, Any]],
    a_findings: list[dict[str, Any]],
    b: dict[str, Any],
    b_namespaces: dict[str, dict[str, Any]],
    b_findings: list[dict[str, Any]],
) -> dict[str, Any]:
    """Scan ``a`` (older) against scan ``b`` (newer), namespace by namespace."""
    rows = []
    for address in a_namespaces.keys() | b_namespaces.keys():
        old, new = a_namespaces.get(address), b_namespaces.get(address)
        below = (old is None and _below_cap(a, new)) or (new is None and _below_cap(b, old))
        rows.append(_row(address, old, new, below))
    rows.sort(
        key=lambda r: (
            -abs(r["bytes_delta"] or 0),
            -abs(r["keys_delta"] or 0),
            r["depth"] or 0,
            r["namespace"] or "",
        )
    )
    settings_a = {k: a["settings"].get(k) for k in ("delimiter", "depth")}
    settings_b = {k: b["settings"].get(k) for k in ("delimiter", "depth")}
    warnings = []
    if settings_a != settings_b:
        warnings.append(
            f"the scans group keys differently ({settings_a} then {settings_b}): "
            "namespaces may appear or vanish only because of that"
        )
    if a["estimated"] or b["estimated"]:
        warnings.append("at least one scan was sampled: its numbers are estimates")
    audited = a.get("audit") is not None and b.get("audit") is not None
    if not audited:
        warnings.append(
            "one of the scans ran without the audit (a CLI scan): findings not compared"
        )
    return {
        "a": _public(a),
        "b": _public(b),
        "totals": _totals(a, b),
        "namespaces": rows,
        "appeared": [r["namespace"] for r in rows if r["status"] == "appeared"],
        "vanished": [r["namespace"] for r in rows if r["status"] == "vanished"],
        "findings": diff_findings(a_findings, b_findings) if audited else None,
        "warnings": warnings,
    }


def _public(scan: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in scan.items() if k not in ("row", "audit_rules", "settings")} | {
        "settings": scan["settings"]
    }


def compare_stored(
    store: Store, a_id: str | None = None, b_id: str | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    """``(diff, None)``, or ``(None, why not)`` (fewer than two scans, an unknown id)."""
    stored = queries.scans(store, limit=500)  # newest first
    b = queries.scan(store, b_id) if b_id else (stored[0] if stored else None)
    if b_id and b is None:
        return None, f"no stored scan {b_id!r}"
    if a_id:
        a = queries.scan(store, a_id)
        if a is None:
            return None, f"no stored scan {a_id!r}"
    else:
        a = next(
            (
                s
                for s in stored
                if b is not None and s["id"] != b["id"] and s["finished_at"] <= b["finished_at"]
            ),
            None,
        )
    if a is None or b is None:
        return None, "fewer than two scans are stored yet: a comparison needs two"
    if a["finished_at"] > b["finished_at"]:
        a, b = b, a  # always older -> newer
    return (
        diff_scans(
            a,
            queries.namespaces(store, a["row"]),
            queries.findings(store, a["row"]),
            b,
            queries.namespaces(store, b["row"]),
            queries.findings(store, b["row"]),
        ),
        None,
    )


def past_threshold(
    diff: dict[str, Any],
    *,
    max_keys: int | None = None,
    max_bytes: int | None = None,
    max_percent: float | None = None,
) -> list[dict[str, Any]]:
    """Namespaces that grew past any threshold given (keys, bytes, percent of bytes)."""
    out = []
    for row in diff["namespaces"]:
        reasons = []
        if max_keys is not None and (row["keys_delta"] or 0) > max_keys:
            reasons.append(f"+{row['keys_delta']:,} keys (limit {max_keys:,})")
        if max_bytes is not None and (row["bytes_delta"] or 0) > max_bytes:
            reasons.append(f"+{row['bytes_delta']:,} bytes (limit {max_bytes:,})")
        if (
            max_percent is not None
            and row["bytes_percent"] is not None
            and (row["bytes_a"] or 0) >= PERCENT_BASE_BYTES
            and row["bytes_percent"] > max_percent
        ):
            reasons.append(f"+{row['bytes_percent']}% bytes (limit {max_percent}%)")
        if reasons:
            out.append({"namespace": row["namespace"], "status": row["status"], "why": reasons})
    return out
