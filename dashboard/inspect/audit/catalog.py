"""The rules catalog: one place that says what every audit rule is.

Each :class:`Rule` has a stable kebab-case id (CI configs and SARIF baselines
depend on it: never rename one), a default severity, a title, why it hurts, how to
fix it (pointing at the pattern module that does it right), the sources it reads
and its thresholds with their defaults. ``docs/rules.md`` is checked against this
table by ``tests/test_audit_docs.py``; `catalog_doc.catalog_markdown` renders the
per-rule part of that page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("info", "warning", "critical")  # ascending
RANK = {name: i for i, name in enumerate(SEVERITIES)}

# What a rule reads; engine.py knows how to get each one and why it may be missing.
SOURCES = {
    "scan": "the keyspace scan (SCAN + TYPE/PTTL/MEMORY USAGE/length)",
    "info-memory": "INFO memory (or CONFIG GET maxmemory*)",
    "info-clients": "INFO clients and INFO stats",
    "info-keyspace": "INFO keyspace",
    "commandstats": "INFO commandstats",
    "slowlog": "SLOWLOG GET",
    "acl": "ACL GETUSER default (or CONFIG GET requirepass)",
    "time": "TIME",
    "streams": "XINFO STREAM/GROUPS/CONSUMERS and XPENDING (bounded)",
    "object-freq": "OBJECT FREQ",
}


@dataclass(frozen=True)
class Threshold:
    """A tunable value of a rule; its type is the type of ``default``."""

    name: str
    default: Any
    help: str


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str
    title: str
    why: str
    fix: str
    sources: tuple[str, ...]
    thresholds: tuple[Threshold, ...] = field(default_factory=tuple)
    detail: str = ""  # how the rule decides, where that is not obvious

    def defaults(self) -> dict[str, Any]:
        return {t.name: t.default for t in self.thresholds}


def _t(name: str, default: Any, help: str) -> Threshold:
    return Threshold(name, default, help)


_VOLATILE_WORDS = [
    "cache",
    "caches",
    "session",
    "sessions",
    "sess",
    "tmp",
    "temp",
    "token",
    "tokens",
    "otp",
    "nonce",
    "ratelimit",
    "throttle",
]

CATALOG: tuple[Rule, ...] = (
    Rule(
        "missing-ttl",
        "warning",
        "Keys without a TTL",
        "Keys that never expire accumulate until memory runs out; with a volatile-* "
        "eviction policy they cannot even be evicted. A namespace where some keys expire "
        "and others do not is the classic trace of a write path that forgot the TTL "
        "(SET then EXPIRE in two steps, INCR without EXPIRE).",
        "Set the TTL in the same command that writes (SET key value PX ms, or a script): "
        "`dashboard.patterns.cache` writes entries with a jittered TTL and "
        "`dashboard.patterns.sessions` renews a sliding one. Exempt namespaces or types that "
        "are meant to persist with `exempt_namespaces` / `exempt_types`.",
        ("scan",),
        (
            _t("min_keys", 1, "fire when a namespace has at least this many keys without TTL"),
            _t("min_share", 0.0, "...and at least this share (0..1) of its keys lack a TTL"),
            _t("exempt_namespaces", [], "namespace globs (and their children) never reported"),
            _t("exempt_types", ["stream"], "key types never reported"),
            _t(
                "volatile_words",
                _VOLATILE_WORDS,
                "namespace segments that mark data meant to expire (warning even when "
                "no key of the namespace has a TTL)",
            ),
            _t("examples", 5, "example keys kept per namespace"),
        ),
        detail=(
            "One finding per namespace. Its severity drops to info when no key of the namespace "
            "has a TTL and no segment of its name is a `volatile_words` word (persistent data, "
            "probably deliberate). Lock keys and our lock's fence counter are left to lock-"
            "without-ttl. Keys of a library whose known layout the scan recognised (rq, "
            "celery/kombu, Sidekiq, BullMQ, ...: docs/scan.md, Known layouts) are listed in the "
            "report's `known_layouts` instead, with why they lack a TTL."
        ),
    ),
    Rule(
        "big-string",
        "warning",
        "Big string values",
        "Reading or writing a big value blocks the server's single thread and the network "
        "for every client; deleting it blocks too (unless UNLINK), and replication and "
        "failover copy it whole.",
        "Split the value (a hash of fields, or chunks), compress it, or keep the blob "
        "outside Redis and cache only a reference. `dashboard.patterns.cache` stores "
        "envelopes; cache the parts you read, not the whole document.",
        ("scan",),
        (
            _t("max_bytes", 102_400, "string length (STRLEN) above which a value is big"),
            _t("examples", 5, "biggest keys kept per namespace"),
        ),
    ),
    Rule(
        "big-collection",
        "warning",
        "Big collections",
        "Commands that read a whole collection (HGETALL, SMEMBERS, LRANGE 0 -1, ZRANGE 0 "
        "-1) or delete it are O(N) and block the server; one huge key also pins its "
        "memory and load to one cluster shard.",
        "Shard the collection into buckets (e.g. by id modulo N), cap it (LTRIM, "
        "ZREMRANGEBYRANK) and read it with cursors (HSCAN/SSCAN/ZSCAN) or bounded ranges, "
        "as `dashboard.patterns.leaderboard` does (bounded reads of one sorted set).",
        ("scan",),
        (
            _t("max_hash_fields", 5_000, "hash fields above which a hash is big"),
            _t("max_set_members", 5_000, "set members above which a set is big"),
            _t("max_zset_members", 5_000, "sorted-set members above which it is big"),
            _t("max_list_elements", 5_000, "list elements above which a list is big"),
            _t("max_bytes", 10_485_760, "MEMORY USAGE above which any collection is big"),
            _t("examples", 5, "biggest keys kept per namespace"),
        ),
    ),
    Rule(
        "keys-command",
        "warning",
        "KEYS is called",
        "KEYS walks the whole keyspace in one command: on a big database it blocks every "
        "other client for seconds.",
        "Use SCAN with MATCH and a bounded COUNT (redis-py `scan_iter`), as the "
        "dashboard's own scan (`dashboard.inspect.keyspace.scan`) does, or keep an index set; deny "
        "KEYS to application users with ACL (`-keys`).",
        ("commandstats", "slowlog"),
        (_t("min_calls", 1, "fire when KEYS was called at least this often"),),
    ),
    Rule(
        "flush-command",
        "warning",
        "FLUSHALL / FLUSHDB is called",
        "A flush wipes every key (of one database or all of them) in one go, blocking the "
        "server unless ASYNC; in production it is almost always an accident or a test "
        "pointed at the wrong server.",
        "Delete by namespace with SCAN + UNLINK in batches, or invalidate by version "
        "instead of deleting (`dashboard.patterns.cache` tag invalidation bumps a version); "
        "deny FLUSHALL/FLUSHDB to application users with ACL (`-flushall -flushdb`).",
        ("commandstats",),
        (_t("min_calls", 1, "fire when a flush command was called at least this often"),),
    ),
    Rule(
        "no-maxmemory",
        "warning",
        "No memory limit",
        "Without maxmemory Redis grows until the operating system kills it (or swaps); no "
        "eviction policy ever runs.",
        "Set maxmemory to what the instance may use (leave room for fork copy-on-write and "
        "buffers, e.g. 70-80% of the machine) and choose a maxmemory-policy that fits "
        "the data (see eviction-policy-mismatch).",
        ("info-memory",),
    ),
    Rule(
        "eviction-policy-mismatch",
        "warning",
        "Eviction policy does not fit the data",
        "noeviction on a cache makes writes fail when memory is full; an allkeys-* policy "
        "evicts data that must not disappear (streams, locks, sessions, queues) on an "
        "instance used for everything; a volatile-* policy with no key holding a TTL "
        "evicts nothing.",
        "Pure cache: allkeys-lru or allkeys-lfu. Mixed data: volatile-lru/volatile-lfu "
        "with a TTL on every cache key (`dashboard.patterns.cache`) and none on data that "
        "must stay, or better, separate instances for cache and for durable data "
        "(`dashboard.patterns.streams`, `dashboard.patterns.locks`, "
        "`dashboard.patterns.sessions`).",
        ("info-memory", "scan"),
        (
            _t(
                "cache_share",
                0.5,
                "share of keys with TTL (or in cache namespaces) that "
                "makes a keyspace cache-shaped",
            ),
            _t("min_keys", 100, "smallest keyspace judged as cache-shaped or TTL-less"),
        ),
        detail=(
            "Only when maxmemory is set. Fires for `noeviction` when at least `cache_share` of "
            "the keys have a TTL or live in cache-named namespaces; for `allkeys-*` when streams,"
            " locks (and fence counters), sessions or lists without TTL exist; for `volatile-*` "
            "when no key has a TTL. The evidence's `reason` says which."
        ),
    ),
    Rule(
        "unbounded-stream",
        "warning",
        "Stream that is never trimmed",
        "A stream keeps every entry until it is trimmed: one that was never trimmed grows "
        "without bound and eventually holds most of the memory.",
        "Trim on every write: XADD ... MAXLEN ~ N (or MINID ~ for time-based retention); "
        "`dashboard.patterns.streams.add(maxlen=...)` does it for you.",
        ("scan", "streams"),
        (
            _t("max_length", 10_000, "entries above which an untrimmed stream is reported"),
            _t("max_streams", 200, "longest streams inspected (bounds the audit's work)"),
        ),
        detail=(
            "Never trimmed means XINFO STREAM's `entries-added` equals its length: no entry was "
            "ever trimmed or deleted (Redis 7); on older servers only the length is judged."
        ),
    ),
    Rule(
        "stream-consumer-lag",
        "warning",
        "Consumer group lags behind",
        "Entries the group has not read yet: consumers are too slow, too few, or not "
        "running, and the backlog (and the stream) keeps growing.",
        "Add consumers to the group (they share the work), process in batches, or find "
        "why consumers stopped; `dashboard.patterns.streams.Worker` reads in batches and "
        "its state shows in the dashboard.",
        ("scan", "streams"),
        (_t("max_lag", 1_000, "entries not yet delivered to the group"),),
    ),
    Rule(
        "stream-stuck-pending",
        "warning",
        "Pending entries nobody acknowledges",
        "Entries delivered to a consumer and never acknowledged, idle for long: the "
        "consumer died or fails on them, and without a reclaim they are never processed.",
        "Reclaim entries idle past a deadline with XAUTOCLAIM and dead-letter those "
        "delivered too often; `dashboard.patterns.streams.Worker` does both "
        "(`<stream>:dead`).",
        ("scan", "streams"),
        (_t("min_idle_ms", 300_000, "idle time of a pending entry that counts as stuck"),),
    ),
    Rule(
        "lock-without-ttl",
        "critical",
        "Lock without a TTL",
        "A lock key that never expires is held forever once its holder crashes: "
        "everything waiting for it deadlocks until someone deletes it by hand.",
        "Acquire with SET key token NX PX ttl and release with a compare-and-delete "
        "script; `dashboard.patterns.locks` does it with fencing tokens and safe extend.",
        ("scan",),
        (
            _t(
                "lock_words",
                ["lock", "locks", "mutex", "mutexes", "semaphore", "lease"],
                "key segments that mark a lock (besides `lock:{<resource>}`)",
            ),
        ),
        detail=(
            "A lock is a string or hash key in our layout `lock:{<resource>}` or with a "
            "`lock_words` segment (or one ending in `_lock`, `-lock`, `.lock`); one finding per "
            "key."
        ),
    ),
    Rule(
        "synchronized-expiry",
        "warning",
        "Many keys expire in the same second",
        "Keys written together with the same TTL expire together: every reader misses at "
        "once and recomputes (a cache stampede), and the expiry cycle itself spikes.",
        "Add jitter to TTLs (e.g. +-10%) and let one caller recompute a missing entry; "
        "`dashboard.patterns.cache` jitters TTLs and has stampede protection.",
        ("scan", "time"),
        (
            _t("min_keys", 1_000, "keys of one namespace expiring in one second"),
            _t("min_share", 0.1, "...and at least this share of its expiring keys"),
            _t(
                "min_ttl_s",
                60,
                "only keys with at least this TTL count (short windows expire together by design)",
            ),
        ),
        detail=(
            "Expiry second = server TIME at the start of the audit + time since + PTTL; per "
            "namespace a Misra-Gries sketch (32 counters, at most 1,000 namespaces) finds the "
            "crowded seconds, so counts are lower bounds."
        ),
    ),
    Rule(
        "connection-pressure",
        "warning",
        "Connections near the limit",
        "When connected clients reach maxclients new connections are refused: the "
        "application sees errors, usually from a connection leak or pools sized per "
        "thread instead of per process.",
        "Share one connection pool per process and cap its size (as `dashboard.connection` "
        "does: one bounded pool per client), close idle clients (`timeout`), and raise "
        "maxclients only together with the file-descriptor limit.",
        ("info-clients",),
        (
            _t("max_share", 0.8, "connected_clients / maxclients that counts as pressure"),
            _t("max_rejected", 0, "rejected_connections above this count fire"),
        ),
    ),
    Rule(
        "logical-databases",
        "info",
        "More than one logical database holds keys",
        "Numbered databases share one thread, one memory limit and one eviction pool; "
        "Redis Cluster supports only db 0, and most tools (this audit's scan too) look "
        "at one database.",
        "Use one database and separate applications with key prefixes "
        "(`dashboard.patterns.keys.key`), or separate instances for isolation.",
        ("info-keyspace",),
        (_t("max_dbs", 1, "databases that may hold keys"),),
    ),
    Rule(
        "no-namespace",
        "info",
        "Keys without a namespace",
        "Keys without a delimiter cannot be told apart by owner: no per-namespace "
        "memory, TTL or ACL key pattern can cover them.",
        "Prefix every key with its application and entity: `<app>:<entity>:<id>` "
        "(`dashboard.patterns.keys.key`).",
        ("scan",),
        (
            _t("min_keys", 10, "keys without the delimiter needed to fire"),
            _t("examples", 5, "example keys kept"),
        ),
        detail=(
            "Counts keys whose name has no delimiter; keys of a recognised known layout "
            "(celery's `celery`, `unacked`, `_kombu.binding.*`, Sidekiq's `queues`, `retry`, "
            "...) are the library's choice, not yours, and are left out."
        ),
    ),
    Rule(
        "long-key-names",
        "info",
        "Very long key names",
        "Every key name is stored, compared and sent in full: long names waste memory on "
        "every key and bandwidth on every command.",
        "Keep names short and hash long parts (a digest of a URL or query) into the key; "
        "`dashboard.patterns.keys.key` builds short, structured names.",
        ("scan",),
        (
            _t("max_bytes", 256, "key length above which a name is long"),
            _t("examples", 5, "longest keys kept per namespace"),
        ),
    ),
    Rule(
        "slow-commands",
        "warning",
        "Slow commands in the SLOWLOG",
        "Commands that ran longer than the slowlog threshold blocked every other client "
        "for that long.",
        "Replace O(N) commands on big keys with cursors or bounded ranges, split big keys "
        "(see big-collection), and keep Lua scripts short; `dashboard.patterns.leaderboard` "
        "shows bounded reads (at most 1,000 entries a call).",
        ("slowlog",),
        (
            _t("min_duration_us", 10_000, "entries at least this slow count"),
            _t("min_entries", 1, "entries of one command needed to fire"),
            _t("entries", 128, "SLOWLOG entries read per node"),
        ),
        detail=(
            "One finding per command name; KEYS is left to keys-command, and the dashboard's own "
            "connections (client name `redis-dashboard`) are ignored."
        ),
    ),
    Rule(
        "dynamic-lua",
        "warning",
        "Many cached Lua scripts",
        "Every distinct EVAL body is compiled and cached forever (until SCRIPT FLUSH): "
        "scripts built with values inside them leak memory and compile on every call.",
        "Keep scripts constant, pass values in KEYS/ARGV and call them with EVALSHA (NOSCRIPT "
        "fallback); `dashboard.patterns.scripts` loads each `lua/*.lua` once.",
        ("info-memory",),
        (_t("max_scripts", 1_000, "cached scripts above which the cache is leaking"),),
    ),
    Rule(
        "default-user-nopass",
        "critical",
        "Default user needs no password",
        "Anyone who can reach the port can read, change and delete every key (and, with "
        "CONFIG, often run code on the host).",
        "Set a password (`requirepass`, or `ACL SETUSER default >...`), or disable the "
        "default user and give each application its own ACL user with the least rights "
        "it needs.",
        ("acl",),
    ),
    Rule(
        "hot-keys",
        "info",
        "Hot keys",
        "A few keys take most of the traffic: in a cluster they pin the load to one shard, "
        "and a hot key that expires or is evicted causes a stampede.",
        "Serve hot reads from a local cache with a short TTL (or RESP3 client-side "
        "caching), or spread the key over copies (`key:{1..N}`); protect recomputation "
        "with `dashboard.patterns.cache`.",
        ("info-memory", "scan", "object-freq"),
        (
            _t("min_freq", 100, "OBJECT FREQ (LFU counter, 0..255) that counts as hot"),
            _t("top_n", 10, "hottest keys reported"),
            _t("max_probes", 1_000_000, "most keys probed with OBJECT FREQ"),
        ),
        detail=(
            "Skipped unless maxmemory-policy is `allkeys-lfu` or `volatile-lfu`. Every scanned "
            "key is probed with OBJECT FREQ in one pipeline per scan page (up to `max_probes`); "
            "one finding per key."
        ),
    ),
)

RULES: dict[str, Rule] = {rule.id: rule for rule in CATALOG}
