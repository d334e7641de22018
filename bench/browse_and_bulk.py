"""Benchmark: the key browser, the streams reading and a bulk TTL fix, on a private server.

* **/keys**: paging through ``user:4*`` over N keys with the default budget: pages,
  keys examined per page, wall time per page, and the longest single command the
  server ran (SLOWLOG at a 1 ms threshold) beside ``redis-cli --scan --pattern``.
* **streams**: reading S streams with groups one by one (``stream_summary``, the old
  per-stream reader) and pipelined (``read_streams``): round trips, commands, wall time.
* **bulk**: setting a TTL on every key of a namespace of B keys without one (dry run,
  then apply): wall time, steps, keys per step, the longest step's server time, and
  the longest single command the server ran meanwhile.

    .venv/bin/python bench/browse_and_bulk.py              # 200,000 keys, 200 streams
    .venv/bin/python bench/browse_and_bulk.py -n 1000000 -b 100000

Not a test: numbers depend on the machine. docs/actions.md and docs/keys.md cite a run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard import gate
from dashboard.embedded import EmbeddedRedis
from dashboard.inspect.audit import load_config
from dashboard.inspect.keyspace.browse import BrowseQuery, browse
from dashboard.inspect.keyspace.bulk import BulkAction, BulkJob, Selector
from dashboard.inspect.keyspace.scan import ScanOptions
from dashboard.inspect.live.streamread import read_streams
from dashboard.inspect.live.streams import LagHistory, stream_summary


def _load(r: redis.Redis, n: int, bulk: int, streams: int) -> None:
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        pipe.set(f"user:{i}:profile", "x" * (i % 64))
        if i % 10_000 == 9_999:
            pipe.execute()
    for i in range(bulk):
        pipe.set(f"session:{i:x}", "v")
        if i % 10_000 == 9_999:
            pipe.execute()
    pipe.execute()
    for i in range(streams):
        key = f"orders:{i}"
        for n_entry in range(5):
            r.xadd(key, {"n": n_entry})
        r.xgroup_create(key, "billing", id="0")
        r.xreadgroup("billing", "w1", {key: ">"}, count=2)


def _slowest(r: redis.Redis) -> tuple[int, float]:
    entries = r.slowlog_get(128)
    return len(entries), max((e["duration"] for e in entries), default=0) / 1000


def bench_keys(r: redis.Redis, client: redis.Redis, port: int) -> None:
    r.slowlog_reset()
    cursor, pages, found, started = "", 0, 0, time.perf_counter()
    examined = []
    while True:
        page = browse(client, BrowseQuery(match="user:4*", cursor=cursor), ScanOptions())
        pages, found = pages + 1, found + len(page["keys"])
        examined.append(page["examined"])
        if not page["next"]:
            break
        cursor = page["next"]
    took = time.perf_counter() - started
    over, worst = _slowest(r)
    cli_started = time.perf_counter()
    out = subprocess.run(
        ["redis-cli", "-p", str(port), "--scan", "--pattern", "user:4*"],
        capture_output=True,
        check=True,
    ).stdout
    cli = time.perf_counter() - cli_started
    print(
        f"/keys user:4*: {found:,} keys in {pages} pages, {took:.2f} s "
        f"({took / pages * 1000:.1f} ms a page, at most {max(examined):,} keys examined a "
        f"page); commands over 1 ms: {over}, slowest {worst:.2f} ms  |  redis-cli --scan "
        f"(names only): {len(out.splitlines()):,} keys, {cli:.2f} s"
    )


def bench_streams(client: redis.Redis, r: redis.Redis) -> None:
    found = [(k, None) for k in sorted(r.scan_iter(_type="stream", count=1000))]
    for name, read in (
        ("one by one", lambda: [
            stream_summary(client, k, node=None, history=LagHistory(), dead_ms=60_000)
            for k, _ in found
        ]),
        ("pipelined", lambda: read_streams(client, found, history=LagHistory(),
                                           dead_ms=60_000)),
    ):  # fmt: skip
        before = r.info("stats")["total_commands_processed"]
        started = time.perf_counter()
        read()
        took = time.perf_counter() - started
        commands = r.info("stats")["total_commands_processed"] - before - 1
        print(f"streams ({len(found)}), {name}: {commands:,} commands, {took * 1000:.1f} ms")


def bench_bulk(client: redis.Redis, r: redis.Redis, bulk: int) -> None:
    options = ScanOptions()
    selector = Selector.for_finding("missing-ttl", (b"session",), options, load_config(None))
    for apply in (False, True):
        r.slowlog_reset()
        job = BulkJob(selector, BulkAction("expire", 3600, 10), apply, options)
        started = time.perf_counter()
        job.run(client)
        took = time.perf_counter() - started
        over, worst = _slowest(r)
        report = job.public()
        print(
            f"bulk {'apply' if apply else 'dry run'} on {bulk:,} keys: {report['state']}, "
            f"{took:.2f} s, {report['steps']} steps of at most {report['max_step_keys']} keys, "
            f"longest step {report['max_step_server_ms']:.2f} ms of server time (budget "
            f"{report['budget_ms']} ms), changed {report['changed']}; commands over 1 ms: "
            f"{over}, slowest {worst:.2f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200_000, help="user:* keys")
    parser.add_argument("-b", type=int, default=100_000, help="session:* keys without TTL")
    parser.add_argument("-s", type=int, default=200, help="streams with a group")
    args = parser.parse_args()
    server = EmbeddedRedis().start()
    try:
        r = redis.Redis(port=server.port)
        r.config_set("slowlog-log-slower-than", 1000)
        _load(r, args.n, args.b, args.s)
        client = gate.install(redis.Redis(port=server.port), True)
        bench_keys(r, client, server.port)
        bench_streams(client, r)
        bench_bulk(client, r, args.b)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
