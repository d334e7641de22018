"""hiredis (redis-py's C reply parser) comes with the default install, and the
pure-Python parser still gives the very same scan and audit when hiredis is absent."""

from __future__ import annotations

import pytest
import redis
from redis._parsers import _HiredisParser, _RESP2Parser, _RESP3Parser

from dashboard import gate
from dashboard.connection import connect
from dashboard.inspect.audit.engine import KEY_RULES, run_audit
from dashboard.inspect.keyspace.scan import ScanOptions
from dashboard.inspect.keyspace.scanjob import scan_keyspace

VOLATILE = {"duration_s", "started_at", "finished_at", "ttl_ms", "pages", "rate", "age_s"}


def _stable(data):
    """Results without the fields that move between two runs (times, live TTLs)."""
    if isinstance(data, dict):
        return {k: _stable(v) for k, v in data.items() if k not in VOLATILE}
    if isinstance(data, list):
        return [_stable(v) for v in data]
    return data


def _plant(r):
    r.set(b"bin:\xff\x00key", b"\x00\x01\xfe" * 300)  # binary names and values
    r.set("big:blob", "x" * 200_000, ex=3600)
    r.hset("user:1:profile", mapping={f"f{i}": "v" * i for i in range(200)})
    r.rpush("queue:jobs", *range(500))
    r.sadd("tags:red", *range(300))
    r.zadd("board:daily", {f"m{i}": i / 3 for i in range(300)})  # float scores
    r.xadd("events:clicks", {"x": "1"})
    r.pfadd("hll:visitors", *range(100))
    r.set("count:hits", 12345678901234)
    for i in range(300):
        r.set(f"cache:item:{i}", "v", px=600_000)
    r.set("newline\r\nkey", "\r\n*3\r\n$1\r\n")  # a reply-looking value


def _parser_of(client) -> type:
    connection = client.connection_pool.get_connection()
    try:
        return type(connection._parser)
    finally:
        client.connection_pool.release(connection)


def test_default_install_parses_with_hiredis(redis_url):
    client = connect(redis_url)
    try:
        client.ping()
        assert _parser_of(client) is _HiredisParser
    finally:
        client.close()


# What redis-py parses with when hiredis is not installed: its RESP3 parser (the
# default protocol of redis-py 8) or its RESP2 parser (protocol 2, redis-py 5 to 7).
PYTHON_PARSERS = [(_RESP3Parser, 3), (_RESP2Parser, 2)]


@pytest.mark.parametrize("path", ["lua", "pipeline"])
@pytest.mark.parametrize(("parser", "protocol"), PYTHON_PARSERS, ids=["resp3", "resp2"])
def test_pure_python_parser_scans_and_audits_the_same(r, redis_url, path, parser, protocol):
    _plant(r)
    fast = connect(redis_url)
    slow = connect(redis_url) if protocol == 3 else redis.Redis.from_url(redis_url, protocol=2)
    slow.connection_pool.connection_kwargs["parser_class"] = parser
    try:
        fast, slow = gate.install(fast, False), gate.install(slow, False)
        slow.ping()
        assert _parser_of(slow) is parser and _parser_of(fast) is _HiredisParser
        options = ScanOptions(path=path, start_count=50)
        results = [scan_keyspace(c, options) for c in (fast, slow)]
        assert [res["state"] for res in results] == ["done", "done"]
        assert results[1]["path"] == path and results[1]["scanned"] == r.dbsize()
        assert _stable(results[1]["result"]) == _stable(results[0]["result"])
        audits = [run_audit(c) for c in (fast, slow)]
        key_findings = [
            [_stable(f) for f in audit["findings"] if f["rule"] in KEY_RULES] for audit in audits
        ]
        assert key_findings[0] and key_findings[1] == key_findings[0]
    finally:
        fast.close()
        slow.close()
