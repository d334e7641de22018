"""Helpers for the history tests: scan pictures shaped like the observer's, and a
simulated run of the sampler (no Redis, timestamps chosen by the test)."""

from __future__ import annotations

import base64

from dashboard.history.record import COUNTER, GAUGE, record_samples, record_scan
from dashboard.history.sampling import SERVER_FACTS


def _node(path: str, keys: int, size: int, with_ttl: int, depth: int = 1) -> dict:
    address = base64.urlsafe_b64encode(path.encode()).decode().rstrip("=")
    return {
        "kind": "namespace",
        "name": path.rsplit(":", 1)[-1],
        "path": path,
        "id": address,
        "depth": depth,
        "keys": keys,
        "bytes": size,
        "ttl": {"with_ttl": with_ttl, "without_ttl": keys - with_ttl, "unknown": 0},
        "types": {"string": {"keys": keys, "bytes": size}},
        "top_bytes": [
            {
                "key": f"{path}:1",
                "id": "x",
                "type": "string",
                "bytes": size // max(keys, 1),
                "ttl_ms": -1,
                "count": 1,
                "length": 5,
            }
        ],
        "children": [],
    }


def picture(
    scan_id: str,
    finished_at: float,
    namespaces: dict[str, tuple[int, int, int]],
    findings: list[tuple[str, str, str]] | None = None,
    audited: bool = True,
) -> dict:
    """A finished scan: ``namespaces`` maps ``path`` to (keys, bytes, keys with TTL);
    ``a:b`` is a child of ``a`` (give the parent too). ``findings``: (rule, severity,
    subject)."""
    nodes = {p: _node(p, *v, depth=p.count(":") + 1) for p, v in namespaces.items()}
    top = []
    for path, node in nodes.items():
        parent = path.rpartition(":")[0]
        (nodes[parent]["children"] if parent in nodes else top).append(node)
    keys = sum(n["keys"] for n in top)
    size = sum(n["bytes"] for n in top)
    with_ttl = sum(n["ttl"]["with_ttl"] for n in top)
    tree = {
        "kind": "total",
        "name": "(all keys)",
        "path": None,
        "id": None,
        "depth": 0,
        "keys": keys,
        "bytes": size,
        "ttl": {"with_ttl": with_ttl, "without_ttl": keys - with_ttl, "unknown": 0},
        "types": {},
        "top_bytes": [],
        "children": top,
    }
    audit = None
    if audited:
        found = [
            {
                "rule": r,
                "severity": s,
                "subject": subj,
                "subject_kind": "namespace",
                "title": r.replace("-", " "),
                "message": f"{subj}: {r}",
            }
            for r, s, subj in findings or []
        ]
        audit = {
            "summary": {"critical": 0, "warning": len(found), "info": 0, "total": len(found)},
            "rules": [{"id": "missing-ttl", "severity": "warning", "status": "ok", "findings": 0}],
            "findings": found,
            "omitted": [],
        }
    return {
        "scan": {
            "id": scan_id,
            "finished_at": finished_at,
            "started_at": finished_at - 1,
            "duration_s": 1.0,
            "reason": "test",
            "scanned": keys,
            "path": "lua",
        },
        "result": {
            "tree": tree,
            "namespaces": len(nodes),
            "folded_keys": 0,
            "settings": {"delimiter": ":", "depth": 3},
            "estimated": False,
        },
        "audit": audit,
    }


def store_scan(store, pic) -> None:
    store.write([lambda conn: record_scan(conn, pic)])


def simulate(
    history,
    start: float,
    seconds: float,
    *,
    groups: int = 10,
    namespaces: int = 50,
    interval: float = 60.0,
    scan_every: float = 600.0,
    maintain_every: float = 3600.0,
):
    """Write what a dashboard records over ``seconds`` from ``start`` (server facts, stream
    groups, limiter and lock counts every ``interval``; a scan every ``scan_every``), and
    run retention every ``maintain_every``, as the writer does."""
    history.writer.flush()  # the writer's own retention at start has run: forget its marks
    history.store.write([lambda c: c.execute("DELETE FROM meta WHERE key LIKE 'downsampled_%'")])
    t, n, next_scan, next_maintenance = start, 0, start, start + maintain_every
    batch = []
    while t < start + seconds:
        samples = [
            (m, None, kind, 1000.0 + n * (3 if kind == COUNTER else 1))
            for m, kind, _, _ in SERVER_FACTS
        ]
        samples.append(("replication_lag_seconds", None, GAUGE, 0.0))
        for g in range(groups):
            labels = {"stream": f"orders:{g}", "group": "mailer"}
            samples += [
                ("stream_lag", labels, GAUGE, float(n % 50)),
                ("stream_pending", labels, GAUGE, float(n % 7)),
            ]
        for name in ("limiters", "identities", "blocked"):
            samples.append((f"ratelimit_{name}", None, GAUGE, 5.0))
        for name in ("held", "held_forever", "unusually_long", "contended"):
            samples.append((f"locks_{name}", None, GAUGE, 2.0))
        batch.append(
            lambda conn, ts=t, s=samples: record_samples(conn, ts, s, history.store.series_ids)
        )
        if t >= next_scan:
            spaces = {
                f"ns{i}": (1000 + n + i, 100_000 * (i + 1) + n, 500) for i in range(namespaces)
            }
            pic = picture(
                f"{int(t * 1000)}-{n}",
                t,
                spaces,
                findings=[("missing-ttl", "warning", f"ns{i}") for i in range(10)],
            )
            batch.append(lambda conn, p=pic: record_scan(conn, p))
            next_scan += scan_every
        if len(batch) >= 200 or t + interval >= next_maintenance:
            history.store.write(batch)
            batch = []
        if t >= next_maintenance:
            history.maintain(now=t)
            next_maintenance += maintain_every
        t += interval
        n += 1
    if batch:
        history.store.write(batch)
    return n
