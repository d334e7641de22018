"""Benchmark: what history costs (disk, time) and what a /metrics scrape costs.

1. **A simulated week** at the default interval for a typical target (server facts,
   10 consumer groups, limiter and lock counts, a scan every 10 minutes with 50
   namespaces and 10 audit findings), retention every simulated hour: the file size
   and the writer's time per simulated minute.
2. **A big keyspace**: two scans of 2,000 namespaces each recorded, then compared
   (the work of ``/compare``).
3. **/metrics** on a dashboard whose last scan has 2,000 top-level namespaces: the
   time per scrape and the commands Redis served during 200 scrapes (INFO
   commandstats; expected: none).

    .venv/bin/python bench/history_store.py

Not a test: numbers depend on the machine and its disk.
"""

from __future__ import annotations

import glob
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis

from dashboard.config import Settings
from dashboard.embedded import EmbeddedRedis
from dashboard.history import History
from dashboard.history.compare import compare_stored
from dashboard.history.store import Store
from tests.history_support import picture, simulate, store_scan

WEEK = 7 * 86400


def week(folder: str) -> None:
    path = os.path.join(folder, "week.sqlite")
    history = History(Settings().updated({"state": path}))
    now = time.time()
    started = time.perf_counter()
    minutes = simulate(history, now - WEEK, WEEK)
    took = time.perf_counter() - started
    history.maintain(now=now)
    history.close()
    size = sum(os.path.getsize(f) for f in glob.glob(path + "*") if not f.endswith(".lock"))
    print(
        f"week at 60 s: {minutes:,} samples, file {size / 1048576:.1f} MB, "
        f"writer {took / minutes * 1000:.2f} ms per simulated minute (retention included)"
    )


def big_compare() -> None:
    store = Store("")
    now = time.time()
    a = {f"ns{i}": (1000 + i, 100_000 + i, 10) for i in range(2000)}
    b = {f"ns{i}": (1100 + i, 120_000 + i, 10) for i in range(2000)}
    started = time.perf_counter()
    store_scan(store, picture("1-1", now - 600, a))
    store_scan(store, picture("2-1", now, b))
    recorded = time.perf_counter() - started
    started = time.perf_counter()
    diff, _ = compare_stored(store)
    compared = time.perf_counter() - started
    print(
        f"2,000 namespaces: record a scan {recorded / 2 * 1000:.0f} ms, "
        f"compare two {compared * 1000:.0f} ms ({len(diff['namespaces'])} rows)"
    )
    store.close()


def scrapes(folder: str) -> None:
    from dashboard.web import create_app

    server = EmbeddedRedis().start()
    try:
        r = redis.Redis(port=server.port)
        pipe = r.pipeline(transaction=False)
        for i in range(2000):
            for k in range(5):
                pipe.set(f"ns{i}:{k}", "v" * 50)
        pipe.execute()
        app = create_app(
            {
                "url": server.url,
                "state": os.path.join(folder, "m.sqlite"),
                "rescan_interval": 0,
                "history_interval": 3600,
            }
        )
        state = app.extensions["redis_dashboard"]
        state.observer.keyspace.wait(60)
        time.sleep(1)  # the samples taken at start
        client = app.test_client()
        client.get("/metrics")
        before = r.info("commandstats")
        started = time.perf_counter()
        for _ in range(200):
            client.get("/metrics")
        took = (time.perf_counter() - started) / 200
        after = r.info("commandstats")
        sent = sum(v["calls"] for v in after.values()) - sum(v["calls"] for v in before.values())
        print(
            f"/metrics with 2,000 namespaces (50 exported + other): {took * 1000:.1f} ms "
            f"per scrape; commands Redis served during 200 scrapes: {sent - 1} "
            "(not counting this INFO)"
        )
        state.close()
    finally:
        server.stop()


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        week(folder)
        big_compare()
        scrapes(folder)


if __name__ == "__main__":
    main()
