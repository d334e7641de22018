"""Benchmark: a Redis Cluster scanned one primary after another vs all primaries at once.

Starts a private cluster (dashboard.embedded_cluster.EmbeddedCluster: 3 primaries by
default, no replicas unless asked), loads N mixed keys (hashes, strings, sets,
lists, sorted sets, streams; several namespaces; a third with TTLs) through
per-node pipelines, then times the keyspace scan with ``parallel=1`` (sequential)
and ``parallel=0`` (one reader per primary), alternating, ``--repeat`` times each.
Every run's totals must equal the ground truth (sum of DBSIZE on the primaries),
or the script fails. ``script calls`` counts the EVALSHA_RO/EVAL_RO calls the servers
answered per scan (commandstats): one per page with the keys in ARGV, against about
one per key with the keys declared per slot. With ``--replicas 1 --scan-from replica``
the same from the replicas, with the primaries' commandstats checked for scan commands.

    .venv/bin/python bench/cluster_scan.py                 # 300,000 keys
    .venv/bin/python bench/cluster_scan.py -n 1000000 --repeat 5

Not a test: numbers depend on the machine (how many cores the servers get).
docs/scan.md records a run.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import redis
from redis.crc import key_slot

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard import gate
from dashboard.connection import connect
from dashboard.embedded_cluster import EmbeddedCluster
from dashboard.inspect.keyspace.scan import ScanOptions
from dashboard.inspect.keyspace.scanjob import DONE, scan_keyspace

SCAN_COMMANDS = ("cmdstat_scan", "cmdstat_evalsha_ro", "cmdstat_eval_ro", "cmdstat_type")
SCRIPT_COMMANDS = ("cmdstat_evalsha_ro", "cmdstat_eval_ro")


def commands_for(i: int) -> list[tuple]:
    """The commands that create key number ``i`` (a fixed mix of types and sizes)."""
    kind = i % 10
    if kind < 3:
        key = f"user:{i}:profile"
        out = [("HSET", key, "name", f"user{i}", "email", f"u{i}@example.com", "age", i % 90)]
    elif kind < 6:
        key = f"session:{i:08x}"
        out = [("SET", key, "s" * (40 + i % 200))]
    elif kind == 6:
        key = f"cache:product:{i}"
        out = [("SET", key, "p" * (100 + i % 900))]
    elif kind == 7:
        key = f"user:{i}:follows"
        out = [("SADD", key, *(f"u{i + j}" for j in range(i % 12 + 1)))]
    elif kind == 8:
        key = f"queue:{i % 100}:jobs:{i}"
        out = [("RPUSH", key, *(f"job{j}" for j in range(i % 8 + 1)))]
    else:
        key = f"lb:game:{i}"
        out = [("ZADD", key, *(x for j in range(i % 10 + 1) for x in (j, f"p{j}")))]
    if i % 3 == 0:
        out.append(("EXPIRE", key, 3600 + i % 1000))
    return out


def load(cluster: EmbeddedCluster, n: int, chunk: int = 5000) -> float:
    """Send each key's commands straight to the primary that owns its slot."""
    started = time.perf_counter()
    client = cluster.client()
    owners = {}
    for slot, nodes in client.nodes_manager.slots_cache.items():
        owners[slot] = nodes[0].port
    pipes = {
        port: redis.Redis(port=port).pipeline(transaction=False) for port in set(owners.values())
    }
    pending = 0
    for i in range(n):
        cmds = commands_for(i)
        pipe = pipes[owners[key_slot(cmds[0][1].encode())]]
        for cmd in cmds:
            pipe.execute_command(*cmd)
        pending += 1
        if pending >= chunk:
            for p in pipes.values():
                p.execute()
            pending = 0
    for p in pipes.values():
        p.execute()
    client.close()
    return time.perf_counter() - started


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def servers_cpu(cluster: EmbeddedCluster) -> float:
    """CPU seconds all the cluster's redis-server processes have used so far."""
    total = 0.0
    for node in cluster.nodes:
        with redis.Redis(port=node.port) as admin:
            info = admin.info("cpu")
        total += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    return total


def calls_of(cluster: EmbeddedCluster, nodes: list, names: tuple[str, ...]) -> int:
    """Calls of these commands (INFO commandstats) summed over ``nodes``."""
    total = 0
    for node in nodes:
        with redis.Redis(port=node.port) as admin:
            stats = admin.info("commandstats")
        total += sum(stats.get(name, {}).get("calls", 0) for name in names)
    return total


def scan_once(cluster: EmbeddedCluster, parallel: int, scan_from: str, target_ms: float) -> dict:
    client = gate.install(connect(cluster.url), allow_writes=False)
    calls_before = calls_of(cluster, cluster.nodes, SCRIPT_COMMANDS)
    server_before, cpu_before = servers_cpu(cluster), client_cpu()
    try:
        started = time.perf_counter()
        snap = scan_keyspace(
            client, ScanOptions(parallel=parallel, scan_from=scan_from, target_ms=target_ms)
        )
        seconds = time.perf_counter() - started
    finally:
        client.close()
    if snap["state"] != DONE:
        raise SystemExit(f"scan failed: {snap['error']}")
    return {
        "seconds": seconds,
        "keys": snap["result"]["tree"]["keys"],
        "client_cpu": client_cpu() - cpu_before,
        "server_cpu": servers_cpu(cluster) - server_before,
        "script_calls": calls_of(cluster, cluster.nodes, SCRIPT_COMMANDS) - calls_before,
        "pages": snap["batches"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-n", "--keys", type=int, default=300_000)
    parser.add_argument("--primaries", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--target-ms", type=float, default=2.0)
    parser.add_argument("--scan-from", default="primary", choices=("primary", "replica", "auto"))
    args = parser.parse_args()
    version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    ).stdout.split()[2]
    print(f"redis-server {version}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    with EmbeddedCluster(args.primaries, args.replicas) as cluster:
        print(f"cluster of {len(cluster.nodes)} nodes up in {cluster.startup_s:.2f} s")
        seconds = load(cluster, args.keys)
        if args.replicas:
            cluster.sync_replicas(timeout=300)
        truth = cluster.dbsize()
        print(f"loaded {truth:,} keys in {seconds:.1f} s; scan_from={args.scan_from}\n")
        for node in cluster.nodes:
            with redis.Redis(port=node.port) as admin:
                admin.config_resetstat()
        runs: dict[str, list[dict]] = {"sequential": [], "parallel": []}
        load_before = os.getloadavg()[0]
        for _ in range(args.repeat):
            for mode, parallel in (("sequential", 1), ("parallel", 0)):
                run = scan_once(cluster, parallel, args.scan_from, args.target_ms)
                if run["keys"] != truth:
                    raise SystemExit(f"{mode}: scanned {run['keys']:,} keys, DBSIZE says {truth:,}")
                runs[mode].append(run)
        print(
            f"{'mode':<12} {'median s':>9} {'best s':>8} {'keys/s':>10} "
            f"{'client CPU s':>13} {'servers CPU s':>14} {'pages':>6} {'script calls':>13} "
            f"{'totals':>8}"
        )
        medians = {}
        for mode, done in runs.items():
            medians[mode] = median = statistics.median(r["seconds"] for r in done)
            cpu = statistics.median(r["client_cpu"] for r in done)
            server = statistics.median(r["server_cpu"] for r in done)
            pages = statistics.median(r["pages"] for r in done)
            calls = statistics.median(r["script_calls"] for r in done)
            print(
                f"{mode:<12} {median:9.2f} {min(r['seconds'] for r in done):8.2f} "
                f"{truth / median:10,.0f} {cpu:13.2f} {server:14.2f} {pages:6,.0f} "
                f"{calls:13,.0f} {'= truth':>8}"
            )
        speedup = medians["sequential"] / medians["parallel"]
        print(f"\nparallel / sequential speed-up: {speedup:.2f}x over {args.repeat} runs each")
        print(f"load average: {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
        if args.scan_from == "replica":
            touched = calls_of(cluster, cluster.primaries(), SCAN_COMMANDS)
            print(f"scan commands seen on the primaries: {touched}")
            if touched:
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
