"""The keyspace report behind ``redis-dashboard keyspace``: one synchronous scan,
the namespace rollup flattened into rows, totals and the biggest keys."""

from __future__ import annotations

from typing import Any

from dashboard import gate
from dashboard.config import Settings
from dashboard.connection import ConnectionOptions, connect, mask_url
from dashboard.inspect.keyspace.rollup import iter_nodes
from dashboard.inspect.keyspace.scan import ScanOptions
from dashboard.inspect.keyspace.scanjob import FAILED, scan_keyspace


class ScanFailed(RuntimeError):
    """The scan stopped on an error (the server went away, a command was refused)."""


def gated_client(settings: Settings) -> Any:
    """A client for ``settings.url`` behind the command gate (read-only unless allowed)."""
    options = ConnectionOptions(
        pool_size=settings.pool_connections,
        socket_timeout=settings.socket_timeout,
        connect_timeout=settings.connect_timeout,
    )
    return gate.install(connect(settings.url, options), settings.allow_writes)


def _row(node: dict[str, Any]) -> dict[str, Any]:
    known = node["ttl"]["with_ttl"] + node["ttl"]["without_ttl"]
    return {
        "namespace": node["path"] if node["kind"] == "namespace" else node["name"],
        "depth": node["depth"],
        "keys": node["keys"],
        "bytes": node["bytes"],
        "types": {name: t["keys"] for name, t in node["types"].items()},
        "with_ttl": node["ttl"]["with_ttl"],
        "without_ttl": node["ttl"]["without_ttl"],
        "ttl_coverage": round(node["ttl"]["with_ttl"] / known, 4) if known else None,
        "owner": node.get("owner"),
    }


def keyspace_report(settings: Settings) -> dict[str, Any]:
    """Scan ``settings.url`` once and return the report (fields in docs/scan.md)."""
    client = gated_client(settings)
    try:
        client.ping()  # a connection problem is an error (exit 2), not an empty report
        snap = scan_keyspace(client, ScanOptions.from_settings(settings))
    finally:
        client.close()
    if snap["state"] == FAILED or snap["result"] is None:
        raise ScanFailed(f"scan failed: {snap['error']}")
    result = snap["result"]
    tree = result["tree"]
    return {
        "url": mask_url(settings.url),
        "scanned_keys": snap["scanned"],
        "duration_s": snap["duration_s"],
        "path": snap["path"],
        "estimated": bool(result.get("estimated")),
        "factor": result.get("factor", 1.0),
        "totals": {
            "keys": tree["keys"],
            "bytes": tree["bytes"],
            "bytes_unavailable": tree["bytes_unavailable"],
            "namespaces": result["namespaces"],
            "folded_keys": result["folded_keys"],
            "with_ttl": tree["ttl"]["with_ttl"],
            "without_ttl": tree["ttl"]["without_ttl"],
        },
        "namespaces": [_row(n) for n in iter_nodes(tree) if n["kind"] != "total"],
        "top_keys": tree["top_bytes"],
    }


def _human(size: float | None) -> str:
    if size is None:  # MEMORY USAGE unavailable: unknown, not zero
        return "unknown"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def keyspace_text(report: dict[str, Any]) -> str:
    """A terminal table of the report."""
    t = report["totals"]
    lines = [
        f"{report['url']}: {report['scanned_keys']:,} keys scanned in "
        f"{report['duration_s']:.2f} s"
        + (f" ({report['path']} path)" if report["path"] else " (empty database)")
        + (" — ESTIMATE from a sample" if report["estimated"] else ""),
        f"total: {t['keys']:,} keys, {_human(t['bytes'])}, {t['namespaces']:,} namespaces, "
        f"{t['without_ttl']:,} keys without TTL",
        *([f"memory unknown: {t['bytes_unavailable']}"] if t.get("bytes_unavailable") else []),
        "",
        f"{'namespace':<40} {'keys':>10} {'memory':>10} {'TTL %':>6}  types",
    ]
    for row in report["namespaces"]:
        name = "  " * max(row["depth"] - 1, 0) + row["namespace"]
        cov = "-" if row["ttl_coverage"] is None else f"{row['ttl_coverage'] * 100:.0f}"
        types = ", ".join(f"{k} {v:,}" for k, v in row["types"].items())
        types += f"  [{row['owner']}]" if row["owner"] else ""
        lines.append(
            f"{name[:40]:<40} {row['keys']:>10,} {_human(row['bytes']):>10} {cov:>6}  {types}"
        )
    lines += ["", "biggest keys:"]
    for entry in report["top_keys"]:
        lines.append(
            f"  {_human(entry['bytes'] or 0):>10}  {entry['type']:<8} {entry['key'][:100]}"
        )
    return "\n".join(lines)
