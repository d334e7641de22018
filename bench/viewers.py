"""Benchmark: many viewers on one dashboard, and what they cost Redis.

Starts a private redis-server, loads N keys (default 1,000,000: hashes, strings, sets,
lists, sorted sets, a third with TTLs) plus the live state the demo makes (our rate
limiters, held locks, streams with consumer groups and pending entries, channels with
subscribers), then runs ``redis-dashboard serve`` on it and measures:

1. **Latency under load**: for each page, ``wrk`` with 20 connections for a few
   seconds (p50, p90, p99, requests/s, non-2xx answers). Pages are served from the
   observer's picture, so this is the dashboard's own speed.
2. **Redis load per viewer count**: commands per second Redis serves to the dashboard
   (``total_commands_processed`` delta, nothing else runs) while 1 viewer, then 20
   viewers, poll every live page once a second as a browser tab does. With the
   observer the two should be about equal: a reading is refreshed once per cadence
   however many watch.

    .venv/bin/python bench/viewers.py                 # 1,000,000 keys
    .venv/bin/python bench/viewers.py -n 100000 --seconds 5

Needs ``wrk`` (Debian: apt-get install wrk) for part 1; without it part 1 uses a
simple threaded Python client (slower, so its latencies include its own overhead).
Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard.embedded import EmbeddedRedis, free_port
from dashboard.patterns.locks import Lock
from dashboard.patterns.ratelimit import RateLimiter

PAGES = [
    "/",
    "/keyspace",
    "/keyspace.json",
    "/audit.json",
    "/ratelimits.json",
    "/locks.json",
    "/streams.json",
    "/pubsub.json",
]
LIVE = ["/ratelimits", "/locks", "/streams", "/pubsub", "/overview"]

# Bench-only loader (it builds key names in Lua, which the project's scripts never do).
LOADER = """
local first, last = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = first, last do
  local kind = i % 10
  local key
  if kind < 4 then
    key = 'user:' .. i .. ':profile'
    redis.call('HSET', key, 'name', 'user' .. i, 'age', i % 90)
  elseif kind < 7 then
    key = 'cache:item:' .. i
    redis.call('SET', key, string.rep('v', 50 + i % 300))
  elseif kind == 7 then
    key = 'user:' .. i .. ':tags'
    redis.call('SADD', key, 'a', 'b', 'c' .. i % 7)
  elseif kind == 8 then
    key = 'queue:' .. (i % 100) .. ':' .. i
    redis.call('RPUSH', key, 'j1', 'j2')
  else
    key = 'lb:' .. i
    redis.call('ZADD', key, 1, 'a', 2, 'b')
  end
  if i % 3 == 0 then redis.call('EXPIRE', key, 3600) end
end
return last - first + 1
"""


def load(r: redis.Redis, n: int) -> None:
    script = r.register_script(LOADER)
    step = 20000
    for first in range(0, n, step):
        script(args=[first, min(n, first + step) - 1])


def live_state(r: redis.Redis) -> list[object]:
    """The demo's kinds of live state; returns what must stay open (subscribers)."""
    for name, limit in (("api", 100), ("login", 5), ("search", 30)):
        limiter = RateLimiter(r, name, limit, 60, algorithm="sliding")
        for who in range(40):
            for _ in range(who % 7):
                limiter.hit(f"user{who}")
    for i in range(30):
        Lock(r, f"order:{i}", ttl=3600).acquire()
    for s in range(12):
        key = f"orders:stream:{s}"
        for i in range(200):
            r.xadd(key, {"n": i})
        for g in ("billing", "mail"):
            r.xgroup_create(key, g, id="0")
            r.xreadgroup(g, "worker-1", {key: ">"}, count=50)
    subscribers = []
    for c in range(5):
        p = r.pubsub()
        p.subscribe(f"notifications:{c}")
        subscribers.append(p)
    return subscribers


def worker_pids(pid: int) -> list[int]:
    """gunicorn's worker process(es) under the ``serve`` process."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in children.read_text().split()] if children.exists() else []


def serve(url: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_DASHBOARD_")}
    env["REDIS_DASHBOARD_URL"] = url
    args = [sys.executable, "-m", "dashboard.cli", "serve", "--port", str(port)]
    args += ["--rescan-interval", "3600"]
    proc = subprocess.Popen(args, env=env, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1).read()
            return proc, base
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("serve did not start")


def get_json(base: str, path: str) -> dict:
    with urllib.request.urlopen(base + path, timeout=60) as answer:
        return json.load(answer)


def wait_first_scan(base: str) -> dict:
    started = time.monotonic()
    while True:
        data = get_json(base, "/keyspace.json")
        if data.get("scan") and data["cycle"]["state"] != "running":
            data["_waited_s"] = time.monotonic() - started
            return data
        time.sleep(0.5)


_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * _UNIT[unit]


def wrk(base: str, path: str, seconds: int, connections: int) -> dict:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", base + path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    dist = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "p50": _ms(dist["50"]),
        "p90": _ms(dist["90"]),
        "p99": _ms(dist["99"]),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "errors": sum(map(int, errors.groups())) if errors else 0,
    }


def python_load(base: str, path: str, seconds: int, connections: int) -> dict:
    host, port = base.removeprefix("http://").split(":")
    latencies: list[float] = []
    bad = [0]
    stop = time.monotonic() + seconds

    def worker() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        while time.monotonic() < stop:
            began = time.perf_counter()
            conn.request("GET", path)
            answer = conn.getresponse()
            answer.read()
            latencies.append((time.perf_counter() - began) * 1000)
            if not 200 <= answer.status < 300:
                bad[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    q = statistics.quantiles(latencies, n=100)
    return {"p50": q[49], "p90": q[89], "p99": q[98], "rps": len(latencies) / seconds,
            "non2xx": bad[0], "errors": 0}  # fmt: skip


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far (Linux /proc)."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def commands_per_second(
    r: redis.Redis, base: str, viewers: int, seconds: float, pids: list[int]
) -> tuple[float, float]:
    """Redis commands/s, and the dashboard's CPU share, while ``viewers`` clients poll
    every live page once a second."""
    stop = threading.Event()
    host, port = base.removeprefix("http://").split(":")

    def viewer(offset: float) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        time.sleep(offset)
        while not stop.is_set():
            began = time.monotonic()
            for page in LIVE:
                conn.request("GET", page, headers={"HX-Request": "true"})
                conn.getresponse().read()
            stop.wait(max(0.0, 1.0 - (time.monotonic() - began)))

    threads = [threading.Thread(target=viewer, args=(i / viewers,)) for i in range(viewers)]
    for t in threads:
        t.start()
    time.sleep(3)  # every section is watched and refreshing
    before = r.info("stats")["total_commands_processed"]
    cpu_before = sum(cpu_seconds(pid) for pid in pids)
    time.sleep(seconds)
    after = r.info("stats")["total_commands_processed"]
    cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_before
    stop.set()
    for t in threads:
        t.join()
    time.sleep(16)  # let the leases run out before the next measurement
    return (after - before - 1) / seconds, 100 * cpu / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=1_000_000, help="keys to load")
    parser.add_argument("--seconds", type=int, default=8, help="wrk run per page")
    parser.add_argument("--connections", type=int, default=20, help="concurrent clients")
    parser.add_argument("--redis-seconds", type=float, default=10, help="Redis load window")
    args = parser.parse_args()
    with EmbeddedRedis() as server:
        r = redis.Redis(port=server.port)
        began = time.monotonic()
        load(r, args.n)
        keep = live_state(r)
        print(f"loaded {r.dbsize():,} keys in {time.monotonic() - began:.1f} s")
        proc, base = serve(server.url)
        try:
            scan = wait_first_scan(base)
            print(
                f"first scan: {scan['totals']['keys']:,} keys, "
                f"{scan['scan']['duration_s']:.1f} s (waited {scan['_waited_s']:.1f} s)"
            )
            for page in PAGES:  # the first viewer of each reading
                urllib.request.urlopen(base + page, timeout=60).read()
            tool = "wrk" if shutil.which("wrk") else "python client"
            run = wrk if tool == "wrk" else python_load
            print(f"\n{args.connections} concurrent clients, {args.seconds} s per page ({tool})")
            print(
                f"{'page':<18}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'req/s':>9}"
                f"{'non-2xx':>9}{'sock err':>9}"
            )
            for page in PAGES:
                m = run(base, page, args.seconds, args.connections)
                print(
                    f"{page:<18}{m['p50']:>9.1f}{m['p90']:>9.1f}{m['p99']:>9.1f}"
                    f"{m['rps']:>9.0f}{m['non2xx']:>9}{m['errors']:>9}"
                )
            print(f"\nRedis commands/s served to the dashboard, viewers polling {LIVE} at 1 Hz")
            pids = [proc.pid, *worker_pids(proc.pid)]
            one, cpu_one = commands_per_second(r, base, 1, args.redis_seconds, pids)
            many, cpu_many = commands_per_second(r, base, 20, args.redis_seconds, pids)
            print(f"{'':<12}{'commands/s':>12}{'dashboard CPU %':>17}")
            print(f"{'1 viewer':<12}{one:>12.1f}{cpu_one:>17.1f}")
            print(f"{'20 viewers':<12}{many:>12.1f}{cpu_many:>17.1f}")
            ratio = many / one if one else float("nan")
            print(f"ratio 20/1: {ratio:.2f} (target <= 1.5)")
        finally:
            proc.terminate()
            proc.wait(10)
            for p in keep:
                p.close()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
