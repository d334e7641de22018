"""Key observers that recognise layouts: locks, expiry clusters, keyspace shape,
stream candidates and (under an LFU policy) hot keys.

Locks are recognised as our layout (``lock:{<resource>}``, :mod:`dashboard.patterns.locks`)
or as foreign ones: a string or hash key with a segment such as ``lock``, ``locks`` or
``mutex`` (``job:42:lock``, ``locks:nightly``, ``cache:lock:x``) or ending in
``_lock``/``-lock``/``.lock``. Our lock's companions (``lock:{x}:fence``, which has
no TTL on purpose, and ``lock:{x}:info``) are not locks.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from dashboard.inspect.errors import CONNECTION_ERRORS, describe_error
from dashboard.inspect.keyspace.scan import is_refusal
from dashboard.patterns.locks import parse_lock_key

from .findings import Finding, key_text, ns_text
from .keyrules import Groups, NsTable, Observer, TopN, has_word
from .thresholds import AuditConfig

_LOCK_TYPES = ("string", "hash")
_LOCK_SUFFIXES = (b"_lock", b"-lock", b".lock")
_COMPANIONS = (b"fence", b"info")
_OURS = b"lock:{"
SESSION_WORDS = frozenset({b"session", b"sessions", b"sess"})


class LockDetector:
    """Tells lock keys (and our lock's companion keys) from everything else."""

    def __init__(self, delimiter: bytes, words: list[str]) -> None:
        self.delimiter = delimiter
        self.words = frozenset(w.encode().lower() for w in words)
        pattern = b"|".join(re.escape(w) for w in sorted(self.words)) or b"(?!)"
        self._search = re.compile(pattern, re.IGNORECASE).search  # one C call per key

    def role(self, key: bytes, kind: str | None = None) -> str | None:
        """``"lock"``, ``"companion"`` (fence/info of our layout) or None."""
        if key.startswith(_OURS):
            if parse_lock_key(key) is not None:
                return "lock"
            base, _, last = key.rpartition(b":")
            if last in _COMPANIONS and parse_lock_key(base) is not None:
                return "companion"
        if self._search(key) is None:
            return None
        if kind is not None and kind not in _LOCK_TYPES:
            return None
        for segment in key.lower().split(self.delimiter):
            if segment in self.words or segment.endswith(_LOCK_SUFFIXES):
                return "lock"
        return None

    def is_lock(self, key: bytes, kind: str) -> bool:
        """A lock or one of our lock's companions (missing-ttl leaves both out)."""
        return self.role(key, kind) is not None


class LockWithoutTtl(Observer):
    rule = "lock-without-ttl"

    def __init__(self, detector: LockDetector, keep: int) -> None:
        self.detector, self.keep = detector, keep
        self.count = 0
        self.kept: list[tuple[bytes, str]] = []

    def add(self, groups: Groups) -> None:
        role = self.detector.role
        for facts in groups.values():
            for key, kind, ttl, _size, _count in facts:
                if ttl == -1 and role(key, kind) == "lock":
                    self.count += 1
                    if len(self.kept) < self.keep:
                        self.kept.append((key, kind))

    @property
    def omitted(self) -> int:
        return self.count - len(self.kept)

    def findings(self) -> list[Finding]:
        # a name is no proof of who wrote a key; our acquire always sets a lease
        layout = "named like dashboard.patterns.locks, which always sets a TTL: other code"
        return [
            Finding(
                self.rule,
                key_text(key),
                f"lock {key_text(key)} has no TTL: held forever if its holder dies",
                {"type": kind, "layout": layout if parse_lock_key(key) else "foreign"},
                subject_kind="key",
            )
            for key, kind in self.kept
        ]


class SynchronizedExpiry(Observer):
    """Per namespace, Misra-Gries heavy hitters over the second each key expires in.

    ``now_ms`` estimates the server clock when a page is folded (server TIME at the
    start plus the time since), so expiry second = now + PTTL. Counts are lower
    bounds (the sketch undercounts by at most keys/(K+1)).
    """

    rule = "synchronized-expiry"
    K = 32
    MAX_NAMESPACES = 1_000
    EXAMPLES = 2

    def __init__(
        self, config: AuditConfig, delimiter: bytes, cap: int, now_ms: Callable[[], float]
    ) -> None:
        c = config.of(self.rule)
        self.delimiter, self.now_ms = delimiter, now_ms
        self.min_keys, self.min_share = c["min_keys"], c["min_share"]
        self.min_ttl_ms = c["min_ttl_s"] * 1000
        self.table = NsTable(min(cap, self.MAX_NAMESPACES), lambda: [0, {}])

    def add(self, groups: Groups) -> None:
        now, k, min_ttl = self.now_ms(), self.K, self.min_ttl_ms
        for ns, facts in groups.items():
            state = None
            for key, _kind, ttl, _size, _count in facts:
                if ttl is None or ttl < min_ttl:
                    continue
                state = state or self.table[ns]
                state[0] += 1
                second = round((now + ttl) / 1000)
                counters = state[1]
                entry = counters.get(second)
                if entry is not None:
                    entry[0] += 1
                    if len(entry[1]) < self.EXAMPLES:
                        entry[1].append(key)
                elif len(counters) < k:
                    counters[second] = [1, [key]]
                else:  # decrement all; amortised O(1) per key
                    for s in list(counters):
                        counters[s][0] -= 1
                        if counters[s][0] == 0:
                            del counters[s]

    def findings(self) -> list[Finding]:
        out = []
        for ns, (total, counters) in self.table.items():
            hits = [
                (count, second, keys)
                for second, (count, keys) in counters.items()
                if count >= self.min_keys and count / total >= self.min_share
            ]
            if not hits:
                continue
            count, second, keys = max(hits, key=lambda h: (h[0], -h[1]))
            name = ns_text(ns, self.delimiter)
            at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(second))
            out.append(
                Finding(
                    self.rule,
                    name,
                    f"at least {count:,} of {total:,} expiring keys in {name} expire in the "
                    f"same second ({at})",
                    {
                        "keys_in_second": count,
                        "expiring_keys": total,
                        "share": round(count / total, 4),
                        "second": second,
                        "at": at,
                        "seconds_over_threshold": len(hits),
                        "examples": [key_text(key) for key in keys],
                    },
                    weight=count,
                )
            )
        return out


class Shape(Observer):
    """What the keyspace holds, for eviction-policy-mismatch: TTL share, cache-named
    keys and data that must not be evicted (streams, locks, sessions, TTL-less queues)."""

    EXAMPLES = 3

    def __init__(self, detector: LockDetector, volatile_words: list[str]) -> None:
        self.detector = detector
        self.volatile = frozenset(w.encode().lower() for w in volatile_words)
        self.keys = self.with_ttl = self.cache_named = 0
        self.must_keep: dict[str, list[Any]] = {}  # kind -> [count, examples]

    def _keep(self, kind: str, key: bytes) -> None:
        entry = self.must_keep.setdefault(kind, [0, []])
        entry[0] += 1
        if len(entry[1]) < self.EXAMPLES:
            entry[1].append(key)

    def add(self, groups: Groups) -> None:
        role = self.detector.role
        for ns, facts in groups.items():
            self.keys += len(facts)
            if has_word(ns, self.volatile):
                self.cache_named += len(facts)
            session = bool(ns) and ns[0].lower() in SESSION_WORDS
            for key, kind, ttl, _size, _count in facts:
                if ttl is not None and ttl >= 0:
                    self.with_ttl += 1
                if kind == "stream":
                    self._keep("streams", key)
                elif role(key, kind) is not None:
                    self._keep("locks", key)
                elif session:
                    self._keep("sessions", key)
                elif kind == "list" and ttl == -1:
                    self._keep("queues", key)

    def public(self) -> dict[str, Any]:
        return {
            "keys": self.keys,
            "with_ttl": self.with_ttl,
            "ttl_share": round(self.with_ttl / self.keys, 4) if self.keys else None,
            "cache_named_keys": self.cache_named,
            "must_not_evict": {
                kind: {"keys": n, "examples": [key_text(k) for k in examples]}
                for kind, (n, examples) in sorted(self.must_keep.items())
            },
        }


class StreamCandidates(Observer):
    """The longest streams (bounded), for the stream rules."""

    def __init__(self, keep: int) -> None:
        self.top = TopN(keep)
        self.streams = 0

    def add(self, groups: Groups) -> None:
        for facts in groups.values():
            for key, kind, _ttl, _size, count in facts:
                if kind == "stream":
                    self.streams += 1
                    self.top.offer(count or 0, key)

    def keys(self) -> list[tuple[bytes, int]]:
        return [(key, length) for length, key, _ in self.top.sorted()]


class HotKeyProbe(Observer):
    """OBJECT FREQ for each page's keys, one pipeline per page, up to ``max_probes``.

    Only built under an LFU policy (the counter is meaningless otherwise). OBJECT does
    not touch the LFU counter it reads; the scan's own reads add about one to each key.
    """

    rule = "hot-keys"

    def __init__(self, client: Any, config: AuditConfig, delimiter: bytes) -> None:
        c = config.of(self.rule)
        self.client, self.delimiter = client, delimiter
        self.min_freq, self.max_probes = c["min_freq"], c["max_probes"]
        self.top = TopN(c["top_n"])
        self.probed = 0
        self.stopped: str | None = None  # why probing stopped early

    def add(self, groups: Groups) -> None:
        if self.stopped:
            return
        facts = [(ns, fact) for ns, group in groups.items() for fact in group]
        room = self.max_probes - self.probed
        if room <= 0:
            self.stopped = f"stopped after {self.probed:,} keys (max_probes)"
            return
        facts = facts[:room]
        pipe = self.client.pipeline(transaction=False)
        for _ns, fact in facts:
            pipe.execute_command("OBJECT", "FREQ", fact[0])
        try:
            replies = pipe.execute(raise_on_error=False)
        except CONNECTION_ERRORS:
            raise
        except RedisError as exc:
            self.stopped = describe_error("OBJECT FREQ", exc)
            return
        self.probed += len(facts)
        for (ns, fact), reply in zip(facts, replies, strict=True):
            if isinstance(reply, Exception):
                if is_refusal(reply):
                    self.stopped = describe_error("OBJECT FREQ", reply)
                    return
                continue  # the key vanished meanwhile
            freq = int(reply)
            if freq >= self.min_freq:
                self.top.offer(freq, fact[0], (ns, fact[1], fact[3]))

    def findings(self) -> list[Finding]:
        return [
            Finding(
                self.rule,
                key_text(key),
                f"{key_text(key)} is hot (LFU counter {freq} of 255)",
                {
                    "freq": freq,
                    "type": kind,
                    "memory": size,
                    "namespace": ns_text(ns, self.delimiter),
                    "probed_keys": self.probed,
                },
                subject_kind="key",
                weight=freq,
            )
            for freq, key, (ns, kind, size) in self.top.sorted()
        ]
