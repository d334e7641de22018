"""Plant one anti-pattern at a time, then let the audit (``/audit``) find it.

These writes are deliberately NOT the pattern layer's way: each is the mistake an
audit rule exists for. Keys go under ``antipattern:`` (``demo:antipattern:`` on an
external Redis) and carry a TTL wherever the mistake itself is not the missing TTL,
so one plant fires one rule. Plants that act on the whole server (KEYS, FLUSHDB,
CONFIG SET, keys outside any namespace, other databases, the script cache, a
busy-waiting script, idle connections, an LFU policy) run only on the demo's own
server; FLUSHDB empties a spare database (15) that only the demo uses, never the one
with data. Clean-up restores what they changed (config from the baseline taken before
the first plant, the SLOWLOG, the idle connections).
"""

from __future__ import annotations

import math
import secrets
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError, ResponseError

from dashboard.demo.target import DemoRefused, DemoTarget
from dashboard.inspect.audit import AuditConfig

PLANT_TTL_S = 3600
SPARE_DB = 15
OTHER_DB = 3
NO_NAMESPACE_PREFIX = "antipatternkey"
BASELINE_CONFIG = ("maxmemory", "maxmemory-policy", "maxclients")
SLOW_CALLS = 3
IDLE_HEADROOM = 32  # client slots left free for the dashboard, the shop and the cards
IDLE_NAME = "antipattern-idle"
HOT_READS = 300
_IDLE: weakref.WeakKeyDictionary[Any, list[Any]] = weakref.WeakKeyDictionary()  # per client
# slow-commands' mistake: a script that holds the server's one thread while it waits
BUSY_LUA = """\
-- ARGV[1] microseconds to busy-wait, ARGV[2] most loop turns (in case TIME stood still)
-- returns the microseconds waited
local t = redis.call('TIME')
local start = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now, turns = start, 0
while now - start < tonumber(ARGV[1]) and turns < tonumber(ARGV[2]) do
  t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  turns = turns + 1
end
return now - start
"""


@dataclass(frozen=True)
class Plant:
    id: str
    rule: str  # the audit rule that should report it
    label: str
    what: str
    marker: str | None  # text the finding's subject contains (None: any finding)
    plant: Callable[[Any, DemoTarget], str]  # returns what was written
    server_wide: bool = False
    needs: str | None = None  # a command fakeredis lacks


def _ns(target: DemoTarget, *parts: str) -> str:
    return target.name("antipattern", *parts)


def _missing_ttl(client: Any, t: DemoTarget) -> str:
    pipe = client.pipeline(transaction=False)
    for i in range(20):
        pipe.set(_ns(t, "cache", "item", str(i)), f"cached value {i}")  # no EX: the bug
    pipe.execute()
    return f"20 cache keys {_ns(t, 'cache', 'item', '*')} written without a TTL"


def _big_string(client: Any, t: DemoTarget) -> str:
    name = _ns(t, "big-string", "blob")
    client.set(name, b"x" * 200_000, ex=PLANT_TTL_S)
    return f"{name}: one 200 KB string"


def _big_hash(client: Any, t: DemoTarget) -> str:
    name = _ns(t, "big-hash", "fields")
    client.delete(name)
    client.hset(name, mapping={f"field-{i}": i for i in range(6000)})
    client.expire(name, PLANT_TTL_S)
    return f"{name}: one hash of 6,000 fields"


def _unbounded_stream(client: Any, t: DemoTarget) -> str:
    name = _ns(t, "firehose", "events")
    client.delete(name)
    for start in range(0, 10_001, 1000):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(10_001, start + 1000)):
            pipe.xadd(name, {"n": i})  # no MAXLEN: the bug
        pipe.execute()
    return f"{name}: 10,001 entries, never trimmed"


def _consumer_lag(client: Any, t: DemoTarget) -> str:
    name = _ns(t, "backlog", "events")
    client.delete(name)
    pipe = client.pipeline(transaction=False)
    for i in range(1500):
        pipe.xadd(name, {"n": i}, maxlen=5000, approximate=True)
    pipe.xgroup_create(name, "reporting", id="0")  # a group nobody reads for
    pipe.execute()
    return f"{name}: group 'reporting' is 1,500 entries behind"


def _stuck_pending(client: Any, t: DemoTarget) -> str:
    name = _ns(t, "jobs", "queue")
    client.delete(name)
    for i in range(10):
        client.xadd(name, {"job": i}, maxlen=1000, approximate=True)
    client.xgroup_create(name, "workers", id="0")
    entries = client.xreadgroup("workers", "crashed-worker", {name: ">"}, count=5)
    ids = [entry_id for _stream, batch in entries for entry_id, _ in batch]
    # as if the consumer died 10 minutes ago: the entries have been idle that long
    client.xclaim(name, "workers", "crashed-worker", 0, ids, idle=600_000)
    return f"{name}: 5 entries pending on 'crashed-worker', idle 10 min"


def _lock_without_ttl(client: Any, t: DemoTarget) -> str:
    name = _ns(t, "lock", "nightly-report")
    client.set(name, secrets.token_hex(8))  # SET NX without PX: held forever if we crash
    return f"{name}: a lock with no TTL"


def _synchronized_expiry(client: Any, t: DemoTarget) -> str:
    at = int(time.time()) + 600
    pipe = client.pipeline(transaction=False)
    for i in range(1200):
        pipe.set(_ns(t, "sync", str(i)), "v", exat=at)  # the same second for all
    pipe.execute()
    return f"1,200 keys {_ns(t, 'sync', '*')} expiring in the same second"


def _long_key(client: Any, t: DemoTarget) -> str:
    name = _ns(t, "long", "x" * 300)
    client.set(name, "v", ex=PLANT_TTL_S)
    return f"a key name of {len(name)} bytes"


def _no_namespace(client: Any, t: DemoTarget) -> str:
    pipe = client.pipeline(transaction=False)
    for i in range(12):
        pipe.set(f"{NO_NAMESPACE_PREFIX}{i}", "v", ex=PLANT_TTL_S)
    pipe.execute()
    return f"12 keys {NO_NAMESPACE_PREFIX}0..11 without a delimiter"


def _keys_command(client: Any, t: DemoTarget) -> str:
    found = client.keys(_ns(t, "*"))
    return f"KEYS {_ns(t, '*')} walked the whole keyspace ({len(found)} matches)"


def _flush_command(client: Any, t: DemoTarget) -> str:
    spare = t.client(db=SPARE_DB, pool_size=2)
    try:
        spare.set("flush-me", "v")
        spare.flushdb()
    finally:
        spare.close()
    return f"FLUSHDB on database {SPARE_DB} (the demo's spare; db 0 untouched)"


def _no_maxmemory(client: Any, t: DemoTarget) -> str:
    client.config_set("maxmemory", 0)
    return "CONFIG SET maxmemory 0 (no limit)"


def _eviction_mismatch(client: Any, t: DemoTarget) -> str:
    if int(client.config_get("maxmemory").get("maxmemory", 0) or 0) == 0:
        raise DemoRefused(
            "maxmemory is 0 (no limit), so no eviction policy ever applies and the audit does "
            "not judge it: clean up first (restores the limit), then plant this"
        )
    # allkeys-lfu if the hot-key plant chose LFU: both plants stay visible
    current = client.config_get("maxmemory-policy")["maxmemory-policy"]
    policy = "allkeys-lfu" if current.endswith("-lfu") else "allkeys-lru"
    client.config_set("maxmemory-policy", policy)
    return f"CONFIG SET maxmemory-policy {policy} beside streams, locks and sessions"


def _logical_db(client: Any, t: DemoTarget) -> str:
    other = t.client(db=OTHER_DB, pool_size=2)
    try:
        other.set("another:app:key", "v", ex=PLANT_TTL_S)
    finally:
        other.close()
    return f"a key in database {OTHER_DB} beside database 0"


def _dynamic_lua(client: Any, t: DemoTarget) -> str:
    pipe = client.pipeline(transaction=False)
    for i in range(1100):
        pipe.eval(f"return {i}", 0)  # a new script body per value: the bug
    pipe.execute()
    return "1,100 distinct EVAL bodies in the script cache"


def _slow_commands(client: Any, t: DemoTarget) -> str:
    floor = AuditConfig().get("slow-commands", "min_duration_us")
    logged = int(client.config_get("slowlog-log-slower-than").get("slowlog-log-slower-than", 0))
    wait_us = max(floor, logged) + 10_000
    if logged < 0 or wait_us > 1_000_000:
        raise DemoRefused(
            f"slowlog-log-slower-than is {logged:,} µs: the SLOWLOG is off, or only a "
            "command blocking this server for over a second would be logged"
        )
    waited = [int(client.eval(BUSY_LUA, 0, wait_us, 2_000_000)) for _ in range(SLOW_CALLS)]
    return f"{SLOW_CALLS} EVAL calls of a script busy-waiting {max(waited) / 1000:.0f} ms each"


def release_idle(client: Any) -> int:
    held = _IDLE.pop(client, [])
    for conn in held:
        conn.disconnect()
    return len(held)


def _connection_pressure(client: Any, t: DemoTarget) -> str:
    release_idle(client)  # planted again: start from the connections without ours
    share = min(AuditConfig().get("connection-pressure", "max_share") + 0.05, 0.95)
    connected = int(client.info("clients").get("connected_clients", 0))
    before = client.config_get("maxclients")["maxclients"]
    limit = max(math.ceil(IDLE_HEADROOM / (1 - share)), connected + IDLE_HEADROOM + 1)
    wanted = max(0, math.ceil(share * limit) - connected)
    client.config_set("maxclients", limit)
    pool, held = client.connection_pool, _IDLE.setdefault(client, [])
    try:
        for _ in range(wanted):
            conn = pool.connection_class(**{**pool.connection_kwargs, "client_name": IDLE_NAME})
            conn.connect()
            held.append(conn)
    except (OSError, RedisError) as exc:
        release_idle(client)
        client.config_set("maxclients", before)
        raise DemoRefused(f"could not open {wanted} idle connections: {exc}") from exc
    return (
        f"CONFIG SET maxclients {limit} and {wanted} idle connections ('{IDLE_NAME}'): "
        f"about {connected + wanted} of {limit} slots in use, {IDLE_HEADROOM} left free"
    )


def _hot_key(client: Any, t: DemoTarget) -> str:
    # LFU of the same family: allkeys stays allkeys (the eviction plant stays visible);
    # else volatile-lfu, which evicts only keys with a TTL like the demo's volatile-lru
    current = client.config_get("maxmemory-policy")["maxmemory-policy"]
    policy = "allkeys-lfu" if current.startswith("allkeys-") else "volatile-lfu"
    client.config_set("maxmemory-policy", policy)
    name = _ns(t, "hot-key", "bestseller")
    client.set(name, "the product everyone opens", ex=PLANT_TTL_S)  # a fresh LFU counter
    factor = client.config_get("lfu-log-factor")["lfu-log-factor"]
    # with the default factor (10) about 50,000 reads make a counter of 100; with 0 each
    # read counts, so a short burst does it. The factor only matters while reading.
    client.config_set("lfu-log-factor", 0)
    try:
        pipe = client.pipeline(transaction=False)
        for _ in range(HOT_READS):
            pipe.get(name)
        pipe.execute()
    finally:
        client.config_set("lfu-log-factor", factor)
    freq = client.object("freq", name)
    return f"CONFIG SET maxmemory-policy {policy}; {name} read {HOT_READS} times (LFU {freq})"


PLANTS: tuple[Plant, ...] = (
    Plant("missing-ttl", "missing-ttl", "Keys without TTL", "cache keys written with SET and "
          "no expiry", "antipattern:cache", _missing_ttl),
    Plant("big-string", "big-string", "A big string", "a 200 KB value", "big-string", _big_string),
    Plant("big-hash", "big-collection", "A big hash", "6,000 fields in one hash", "big-hash",
          _big_hash),
    Plant("unbounded-stream", "unbounded-stream", "An unbounded stream", "XADD without MAXLEN",
          "firehose", _unbounded_stream),
    Plant("consumer-lag", "stream-consumer-lag", "A lagging consumer group", "a group that "
          "never reads", "backlog", _consumer_lag),
    Plant("stuck-pending", "stream-stuck-pending", "Stuck pending entries", "a consumer died "
          "holding entries", "jobs", _stuck_pending),
    Plant("lock-without-ttl", "lock-without-ttl", "A lock without TTL", "SET NX with no PX",
          "nightly-report", _lock_without_ttl),
    Plant("synchronized-expiry", "synchronized-expiry", "Synchronized expiry", "1,200 keys "
          "with the same expiry second", "sync", _synchronized_expiry),
    Plant("long-key", "long-key-names", "A very long key name", "300+ byte key name", "long",
          _long_key),
    Plant("no-namespace", "no-namespace", "Keys without a namespace", "no delimiter in the "
          "name", None, _no_namespace, server_wide=True),
    Plant("keys-command", "keys-command", "KEYS", "a KEYS call (blocks the server)", "KEYS",
          _keys_command, server_wide=True, needs="INFO"),
    Plant("flush-command", "flush-command", "FLUSHDB", "FLUSHDB on a spare database",
          "FLUSHDB", _flush_command, server_wide=True, needs="INFO"),
    Plant("no-maxmemory", "no-maxmemory", "No memory limit", "CONFIG SET maxmemory 0",
          "maxmemory", _no_maxmemory, server_wide=True, needs="CONFIG"),
    Plant("eviction-policy", "eviction-policy-mismatch", "Eviction policy mismatch",
          "allkeys-lru on a Redis holding streams and locks", "maxmemory-policy",
          _eviction_mismatch, server_wide=True, needs="CONFIG"),
    Plant("logical-databases", "logical-databases", "Several databases", "keys in db 3 too",
          "databases", _logical_db, server_wide=True, needs="INFO"),
    Plant("dynamic-lua", "dynamic-lua", "Dynamic Lua", "EVAL with values inside the script",
          "script cache", _dynamic_lua, server_wide=True, needs="INFO"),
    Plant("slow-commands", "slow-commands", "Slow commands", "a Lua script busy-waiting "
          "20 ms, 3 times", "EVAL", _slow_commands, server_wide=True, needs="SLOWLOG"),
    Plant("connection-pressure", "connection-pressure", "Connection pressure", "a low "
          "maxclients and idle connections filling 85% of it", "clients",
          _connection_pressure, server_wide=True, needs="CONFIG"),
    Plant("hot-key", "hot-keys", "A hot key", "an LFU policy and one key read 300 times",
          "hot-key", _hot_key, server_wide=True, needs="CONFIG"),
)  # fmt: skip
BY_ID = {p.id: p for p in PLANTS}


def plant(client: Any, target: DemoTarget, plant_id: str) -> tuple[Plant, str]:
    """Write one anti-pattern; returns the plant and a description of what was written."""
    if plant_id not in BY_ID:
        raise ValueError(f"no anti-pattern {plant_id!r}; choose one of {', '.join(BY_ID)}")
    p = BY_ID[plant_id]
    if p.server_wide:
        target.check_owned(f"planting '{p.label}'")
    if p.needs in target.missing and p.needs != "INFO":  # (INFO: planted, the rule skipped)
        raise DemoRefused(f"fakeredis has no {p.needs}: '{p.label}' cannot be planted here")
    try:
        return p, p.plant(client, target)
    except ResponseError as exc:
        raise DemoRefused(f"the server refused '{p.label}': {exc}") from exc


def audit_verdict(p: Plant, report: dict[str, Any] | None) -> dict[str, Any]:
    """Did the audit report the plant? Its matching findings, or why the rule was skipped."""
    if report is None:
        return {"reported": False, "findings": [], "skipped": None}
    skipped = next((s["reason"] for s in report.get("skipped", []) if s["rule"] == p.rule), None)
    hits = [
        {"subject": f["subject"], "severity": f["severity"], "message": f["message"]}
        for f in report.get("findings", [])
        if f["rule"] == p.rule and (p.marker is None or p.marker in f["subject"])
    ]
    return {"reported": bool(hits), "findings": hits[:5], "skipped": skipped}


def clean_up(client: Any, target: DemoTarget, baseline: dict[str, Any]) -> list[str]:
    """Remove every plant: keys (SCAN + UNLINK), and on the demo's own server the config,
    the other database and the script cache as they were before."""
    done = []
    patterns = [_ns(target, "*")]
    if target.owned:
        patterns.append(NO_NAMESPACE_PREFIX + "*")
    removed = 0
    for pattern in patterns:
        batch: list[Any] = []
        for name in client.scan_iter(match=pattern, count=1000):
            batch.append(name)
            if len(batch) >= 500:
                removed += client.unlink(*batch)
                batch = []
        if batch:
            removed += client.unlink(*batch)
    done.append(f"unlinked {removed} planted keys ({', '.join(patterns)})")
    if not target.owned:
        return done
    other = target.client(db=OTHER_DB, pool_size=2)
    try:
        other.delete("another:app:key")
    finally:
        other.close()
    idle = release_idle(client)
    if idle:
        done.append(f"closed {idle} idle connections")
    if "CONFIG" not in target.missing:
        for name, value in baseline.items():
            try:
                client.config_set(name, value)
                done.append(f"CONFIG SET {name} {value}")
            except RedisError as exc:
                done.append(f"could not restore {name}: {exc}")
        try:
            client.script_flush()
            client.config_resetstat()
            client.slowlog_reset()
            done.append(
                "SCRIPT FLUSH, CONFIG RESETSTAT and SLOWLOG RESET (KEYS/FLUSHDB counts, "
                "rejected connections and slow entries cleared)"
            )
        except RedisError as exc:
            done.append(f"could not reset scripts/stats: {exc}")
    return done


def config_baseline(client: Any, target: DemoTarget) -> dict[str, Any]:
    """maxmemory, its policy and maxclients before any plant (to restore on clean-up)."""
    if not target.owned or "CONFIG" in target.missing:
        return {}
    found: dict[str, Any] = {}
    for name in BASELINE_CONFIG:  # one by one: CONFIG GET takes one pattern before Redis 7
        try:
            found.update(client.config_get(name))
        except RedisError:
            continue
    return {k: found[k] for k in BASELINE_CONFIG if k in found}
