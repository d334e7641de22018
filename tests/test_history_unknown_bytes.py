"""A Redis without MEMORY USAGE (fakeredis, an ACL that refuses it): bytes are unknown,
and the history, the comparison and /metrics say nothing about them rather than 0."""

import fakeredis

from dashboard.history import queries
from dashboard.history.compare import diff_scans
from dashboard.history.metrics import top_n
from dashboard.history.record import record_scan
from dashboard.history.store import Store
from dashboard.inspect.keyspace.scan import ScanOptions
from dashboard.inspect.keyspace.scanjob import scan_keyspace


def _picture(client, scan_id):
    snap = scan_keyspace(client, ScanOptions())
    scan = {k: v for k, v in snap.items() if k != "result"} | {"id": scan_id, "reason": "test"}
    return {"scan": scan, "result": snap["result"], "audit": None}


def test_unknown_bytes_are_stored_compared_and_exported_as_unknown():
    fake = fakeredis.FakeRedis()
    fake.mset({"user:1": "a", "user:2": "b", "cache:x": "c"})
    first = _picture(fake, "1-1")
    assert first["result"]["tree"]["bytes"] is None  # fakeredis: no MEMORY USAGE
    fake.set("user:3", "d")
    second = _picture(fake, "2-1")
    store = Store("")
    try:
        store.write([lambda conn: record_scan(conn, first), lambda conn: record_scan(conn, second)])
        old, new = queries.scan(store, "1-1"), queries.scan(store, "2-1")
        assert new["bytes"] is None and new["keys"] == 4
        diff = diff_scans(
            old,
            queries.namespaces(store, old["row"]),
            [],
            new,
            queries.namespaces(store, new["row"]),
            [],
        )
    finally:
        store.close()
    user = next(r for r in diff["namespaces"] if r["namespace"] == "user")
    assert user["keys_delta"] == 1 and user["bytes_delta"] is None
    assert user["status"] == "grown" and diff["totals"]["bytes_delta"] is None
    rows = [(f"ns{i}", {"keys": i, "memory_bytes": None}) for i in range(5)]
    other = dict(top_n(rows, 2))["(other)"]
    assert other == {"keys": 2 + 3 + 4, "memory_bytes": None}
    fake.close()
