"""Benchmark: our keyspace scan against ``redis-cli --memkeys`` / ``--bigkeys``.

Starts a private redis-server (dashboard.embedded.EmbeddedRedis), loads N mixed keys
(strings, hashes, lists, sets, sorted sets, streams, HyperLogLogs; several
namespaces; a third with TTLs) and times, on the same data:

* our engine, lua path (one EVALSHA_RO per SCAN page),
* our engine, pipeline path (TYPE+PTTL+MEMORY USAGE pipeline, then counts),
* ``redis-cli --memkeys`` and ``redis-cli --bigkeys``.

Each engine runs in its own process so that "peak RSS" is that engine's alone.
It also reports how hard each one leaned on the server: the longest single
command the server executed during the run and how many took over 1 ms (from
SLOWLOG with a 1 ms threshold, reset before each run).

    .venv/bin/python bench/scan_keyspace.py            # 1,000,000 keys
    .venv/bin/python bench/scan_keyspace.py -n 200000 --skip-cli

Not a test: numbers depend on the machine. docs/scan.md records a run.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard.embedded import EmbeddedRedis

# Bench-only loader on a private standalone server: it builds key names in Lua,
# which the project's scripts never do (they take every key in KEYS).
LOADER = """
local first, last = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = first, last do
  local kind = i % 20
  local ttl = (i % 3 == 0) and (60 + (i % 100000)) or 0
  local key
  if kind < 6 then
    key = 'user:' .. i .. ':profile'
    redis.call('HSET', key, 'name', 'user' .. i, 'email', 'u' .. i .. '@example.com',
               'age', i % 90, 'city', 'city' .. (i % 500))
  elseif kind < 10 then
    key = 'session:' .. string.format('%08x%08x', i, i * 7919 % 4294967291)
    redis.call('SET', key, string.rep('s', 40 + i % 200))
    if ttl == 0 then ttl = 1800 end
  elseif kind < 13 then
    key = 'cache:product:' .. i
    redis.call('SET', key, string.rep('p', 100 + i % 1900))
  elseif kind == 13 then
    key = 'user:' .. i .. ':follows'
    for j = 0, i % 30 do redis.call('SADD', key, 'u' .. (i + j)) end
  elseif kind == 14 then
    key = 'queue:' .. (i % 1000) .. ':jobs:' .. i
    for j = 0, i % 20 do redis.call('RPUSH', key, 'job' .. j) end
  elseif kind == 15 then
    key = 'lb:game:' .. i
    for j = 0, i % 25 do redis.call('ZADD', key, j, 'p' .. j) end
  elseif kind == 16 then
    key = 'events:' .. i
    redis.call('XADD', key, '*', 'type', 'click', 'n', i)
  elseif kind == 17 then
    key = 'visitors:2024-01-' .. (i % 28 + 1) .. ':' .. i
    redis.call('PFADD', key, 'a' .. i, 'b' .. i, 'c' .. i)
  elseif kind == 18 then
    key = 'rate:10.0.' .. (i % 256) .. '.' .. (i % 199) .. ':' .. i
    redis.call('SET', key, i % 100)
  else
    key = 'plainkey' .. i
    redis.call('SET', key, i)
  end
  if ttl > 0 then redis.call('EXPIRE', key, ttl) end
end
return last - first + 1
"""


def load(client: redis.Redis, n: int, chunk: int = 20_000) -> float:
    started = time.perf_counter()
    for first in range(0, n, chunk):
        client.eval(LOADER, 0, first, min(n, first + chunk) - 1)
    return time.perf_counter() - started


def reset_slowlog(client: redis.Redis) -> None:
    client.config_set("slowlog-log-slower-than", 1000)  # µs
    client.config_set("slowlog-max-len", 100_000)
    client.slowlog_reset()


def slow_commands(client: redis.Redis) -> tuple[int, float]:
    entries = client.slowlog_get(100_000)
    longest = max((e["duration"] for e in entries), default=0)
    return len(entries), longest / 1000


def server_cpu(client: redis.Redis) -> float:
    """CPU seconds the redis-server process has used so far."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def engine(port: int, path: str, target_ms: float) -> None:
    """Child process: run our scan once and print JSON (time, keys, peak RSS)."""
    from dashboard.inspect.keyspace.scan import ScanOptions
    from dashboard.inspect.keyspace.scanjob import scan_keyspace

    client = redis.Redis(port=port, socket_timeout=30)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    snap = scan_keyspace(client, ScanOptions(path=path, target_ms=target_ms))
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tree = snap["result"]["tree"]
    print(
        json.dumps(
            {
                "seconds": seconds,
                "keys": snap["analysed"],
                "bytes": tree["bytes"],
                "path": snap["path"],
                "batches": snap["batches"],
                "max_batch_ms": snap["max_batch_ms"],
                "server_ms": snap["server_ms"],
                "rss_mb": peak / 1024,
                "rss_before_mb": before / 1024,
                "namespaces": snap["result"]["namespaces"],
            }
        )
    )


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM (peak resident set) of a running process, from /proc."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_child(args: list[str]) -> tuple[float, float, str]:
    """Run a process; return (seconds, its peak RSS in MB, stdout).

    The peak is polled from /proc while it runs: rusage of a child forked from this
    Python would report the parent's size for a small C program like redis-cli.
    """
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.DEVNULL)
        peak = 0.0
        while proc.poll() is None:
            peak = max(peak, peak_rss_mb(proc.pid) or 0.0)
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        if proc.returncode:
            raise RuntimeError(f"{args[0]} exited with {proc.returncode}")
        out.seek(0)
        return seconds, peak, out.read().decode("utf-8", "replace")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--keys", type=int, default=1_000_000)
    parser.add_argument("--target-ms", type=float, default=2.0)
    parser.add_argument("--skip-cli", action="store_true", help="do not time redis-cli")
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        engine(args.port, args.engine, args.target_ms)
        return

    with EmbeddedRedis() as server:
        client = redis.Redis(port=server.port, socket_timeout=60)
        seconds = load(client, args.keys)
        dbsize = client.dbsize()
        used = client.info("memory")["used_memory_human"]
        print(f"loaded {dbsize:,} keys in {seconds:.1f} s (used_memory {used})", flush=True)
        rows = []
        me = [sys.executable, __file__, "--port", str(server.port)]
        runs = [("ours, lua path", [*me, "--engine", "lua", "--target-ms", str(args.target_ms)])]
        if not args.skip_pipeline:
            runs.append(("ours, pipeline path", [*me, "--engine", "pipeline", "--target-ms", "2"]))
        if not args.skip_cli:
            cli = ["redis-cli", "-p", str(server.port)]
            runs += [("redis-cli --memkeys", [*cli, "--memkeys"])]
            runs += [("redis-cli --bigkeys", [*cli, "--bigkeys"])]
        for name, command in runs:
            reset_slowlog(client)
            cpu = server_cpu(client)
            seconds, rss, out = run_child(command)
            cpu = server_cpu(client) - cpu
            slow, longest = slow_commands(client)
            detail = json.loads(out) if name.startswith("ours") else {}
            rows.append((name, seconds, dbsize / seconds, rss, cpu, slow, longest))
            print(f"  {name}: {seconds:.2f} s {detail}", flush=True)

    print()
    print(f"{args.keys:,} keys, redis-server {redis_version()}")
    print(
        f"| {'engine':<21} | {'seconds':>7} | {'keys/s':>9} | {'peak RSS MB':>11} "
        f"| {'server CPU s':>12} | {'cmds >1ms':>9} | {'longest cmd ms':>14} |"
    )
    print(f"|{'-' * 23}|{'-' * 8}:|{'-' * 10}:|{'-' * 12}:|{'-' * 13}:|{'-' * 10}:|{'-' * 15}:|")
    for name, seconds, rate, rss, cpu, slow, longest in rows:
        print(
            f"| {name:<21} | {seconds:>7.2f} | {rate:>9,.0f} | {rss:>11.1f} "
            f"| {cpu:>12.2f} | {slow:>9} | {longest:>14.2f} |"
        )


def redis_version() -> str:
    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    return out.split("v=")[1].split()[0] if "v=" in out else "?"


if __name__ == "__main__":
    main()
