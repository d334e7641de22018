"""Key-based rules: observers fed by the one keyspace scan, page by page.

Each observer gets every SCAN page as ``{namespace: [fact, ...]}`` (namespaces
split exactly like the keyspace view's rollup) and keeps bounded state only:
counters and a few example keys per namespace (at most ``max_namespaces`` of them,
the rest fold into ``(other)``) and small top-N heaps. Nothing is kept per key.
A fact is ``(key, type, ttl_ms, bytes, count)`` (ttl -1: none, None: unknown).
"""

from __future__ import annotations

import fnmatch
import heapq
from collections.abc import Callable
from typing import Any

from dashboard.inspect.keyspace.rollup import Fact
from dashboard.inspect.layouts import LayoutTally

from .findings import Finding, key_text, ns_text
from .thresholds import AuditConfig

Namespace = tuple[bytes, ...]
Groups = dict[Namespace, list[Fact]]


class Observer:
    """Base: ``add`` each page, then ``findings`` once the scan is done."""

    rule: str = ""

    def add(self, groups: Groups) -> None:
        raise NotImplementedError

    def findings(self) -> list[Finding]:
        return []


class NsTable:
    """Per-namespace state, bounded: past ``cap`` namespaces everything folds into None."""

    def __init__(self, cap: int, factory: Callable[[], Any]) -> None:
        self.cap = cap
        self.factory = factory
        self.states: dict[Namespace | None, Any] = {}

    def __getitem__(self, ns: Namespace) -> Any:
        state = self.states.get(ns)
        if state is None:
            if len(self.states) >= self.cap:
                ns_key: Namespace | None = None
                state = self.states.get(None)
            else:
                ns_key = ns
            if state is None:
                state = self.states[ns_key] = self.factory()
        return state

    def items(self) -> list[tuple[Namespace | None, Any]]:
        return list(self.states.items())


class TopN:
    """The ``n`` largest ``(metric, key, extra)`` entries; ties broken by key bytes."""

    __slots__ = ("heap", "n")

    def __init__(self, n: int) -> None:
        self.n = n
        self.heap: list[tuple[int, Any, Any]] = []

    def offer(self, metric: int, key: bytes | str, extra: Any = None) -> None:
        if self.n <= 0:
            return
        entry = (metric, key, extra)
        if len(self.heap) < self.n:
            if all(e[1] != key for e in self.heap):  # SCAN may return a key twice
                heapq.heappush(self.heap, entry)
        elif (metric, key) > self.heap[0][:2] and all(e[1] != key for e in self.heap):
            heapq.heapreplace(self.heap, entry)

    def sorted(self) -> list[tuple[int, Any, Any]]:
        return sorted(self.heap, key=lambda e: (-e[0], e[1]))


def ns_matches(ns: Namespace, delimiter: bytes, patterns: list[str]) -> bool:
    """Whether a namespace or one of its ancestors matches one of the globs."""
    for depth in range(1, len(ns) + 1):
        path = delimiter.join(ns[:depth]).decode("utf-8", "surrogateescape")
        if any(fnmatch.fnmatchcase(path, p) for p in patterns):
            return True
    return not ns and any(p in ("(root)", "") for p in patterns)


def has_word(ns: Namespace, words: frozenset[bytes]) -> bool:
    return any(segment.lower() in words for segment in ns)


class MissingTtl(Observer):
    """Per namespace: keys without TTL (lock keys go to lock-without-ttl instead)."""

    rule = "missing-ttl"

    def __init__(
        self,
        config: AuditConfig,
        delimiter: bytes,
        cap: int,
        is_lock: Callable[[bytes, str], bool],
        layouts: LayoutTally | None = None,
    ) -> None:
        c = config.of(self.rule)
        self.delimiter = delimiter
        self.min_keys, self.min_share = c["min_keys"], c["min_share"]
        self.exempt_types = frozenset(c["exempt_types"])
        self.exempt_ns = list(c["exempt_namespaces"])
        self.volatile = frozenset(w.encode().lower() for w in c["volatile_words"])
        self.examples = c["examples"]
        self.is_lock = is_lock
        self.layouts = layouts
        # keys, with, without, examples, and the same per known library (set aside)
        self.table = NsTable(cap, lambda: [0, 0, 0, [], {}])
        self._exempt: dict[Namespace, bool] = {}
        self.exempted_keys = 0

    def add(self, groups: Groups) -> None:
        exempt_types, is_lock, examples = self.exempt_types, self.is_lock, self.examples
        page = self.layouts.page if self.layouts is not None else {}
        for ns, facts in groups.items():
            exempt = self._exempt.get(ns)
            if exempt is None:
                exempt = self._exempt[ns] = ns_matches(ns, self.delimiter, self.exempt_ns)
                if len(self._exempt) > 65_536:
                    self._exempt.clear()
            if exempt:
                self.exempted_keys += len(facts)
                continue
            state = self.table[ns]
            marks = page.get(ns)
            for i, (key, kind, ttl, _size, _count) in enumerate(facts):
                if ttl is None or kind in exempt_types or is_lock(key, kind):
                    continue
                bucket = state
                if marks is not None and marks[i] >= 0:  # a known layout's key: set aside
                    bucket = state[4].get(marks[i]) or state[4].setdefault(marks[i], [0, 0, 0, []])
                bucket[0] += 1
                if ttl >= 0:
                    bucket[1] += 1
                else:
                    bucket[2] += 1
                    if len(bucket[3]) < examples:
                        bucket[3].append(key)

    def findings(self) -> list[Finding]:
        out = []
        layouts = self.layouts.layouts if self.layouts is not None else ()
        present = self.layouts.present() if self.layouts is not None else set()
        for ns, (keys, with_ttl, without, examples, aside) in self.table.items():
            known: dict[str, int] = {}
            for lib, (k, w, wo, ex) in aside.items():
                if lib in present:  # reported under known_layouts instead
                    known[layouts[lib].library] = k
                    continue
                keys, with_ttl, without = keys + k, with_ttl + w, without + wo
                examples = examples + ex[: self.examples - len(examples)]
            share = without / keys if keys else 0.0
            if without < max(self.min_keys, 1) or share < self.min_share:
                continue
            volatile = ns is not None and has_word(ns, self.volatile)
            deliberate = with_ttl == 0 and not volatile
            name = ns_text(ns, self.delimiter)
            why = (
                "no key of it has a TTL: probably deliberate, exempt it if so"
                if deliberate
                else "some keys of it do expire"
                if with_ttl
                else "its name says the data is meant to expire"
            )
            out.append(
                Finding(
                    self.rule,
                    name,
                    f"{without:,} of {keys:,} keys in {name} have no TTL ({why})",
                    {
                        "keys": keys,
                        "without_ttl": without,
                        "with_ttl": with_ttl,
                        "share": round(share, 4),
                        "examples": [key_text(k) for k in examples],
                        **({"known_layout_keys": known} if known else {}),
                    },
                    severity="info" if deliberate else None,
                    weight=without,
                )
            )
        return out


class _OverLimit(Observer):
    """Counts, per namespace, keys whose measure exceeds ``max_bytes`` and keeps the
    top offenders (bounded: one counter and a top-N per namespace)."""

    def __init__(self, config: AuditConfig, delimiter: bytes, cap: int) -> None:
        c = config.of(self.rule)
        self.delimiter, self.max_bytes, self.n = delimiter, c["max_bytes"], c["examples"]
        self.table = NsTable(cap, lambda: [0, TopN(self.n)])

    def measure(self, fact: tuple) -> tuple[int, Any, Any] | None:
        """``(length, what to keep, extra)`` for a fact this rule looks at, else None."""
        raise NotImplementedError

    def add(self, groups: Groups) -> None:
        limit = self.max_bytes
        for ns, facts in groups.items():
            state = None
            for fact in facts:
                measured = self.measure(fact)
                if measured is not None and measured[0] > limit:
                    state = state or self.table[ns]
                    state[0] += 1
                    state[1].offer(*measured)


class BigString(_OverLimit):
    rule = "big-string"

    def measure(self, fact: tuple) -> tuple[int, Any, Any] | None:
        key, kind, _ttl, size, count = fact
        if kind != "string":
            return None
        length = count if count is not None else size
        return None if length is None else (length, key, size)

    def findings(self) -> list[Finding]:
        out = []
        for ns, (over, top) in self.table.items():
            name = ns_text(ns, self.delimiter)
            biggest = top.sorted()
            out.append(
                Finding(
                    self.rule,
                    name,
                    f"{over:,} string values in {name} exceed {self.max_bytes:,} bytes "
                    f"(largest {biggest[0][0]:,} bytes)",
                    {
                        "keys_over": over,
                        "max_bytes": self.max_bytes,
                        "largest_bytes": biggest[0][0],
                        "top": [
                            {"key": key_text(k), "length": n, "memory": m} for n, k, m in biggest
                        ],
                    },
                    weight=biggest[0][0],
                )
            )
        return out


_ELEMENT_LIMITS = {
    "hash": "max_hash_fields",
    "set": "max_set_members",
    "zset": "max_zset_members",
    "list": "max_list_elements",
}


class BigCollection(Observer):
    rule = "big-collection"

    def __init__(self, config: AuditConfig, delimiter: bytes, cap: int) -> None:
        c = config.of(self.rule)
        self.delimiter, self.n = delimiter, c["examples"]
        self.limits = {kind: c[name] for kind, name in _ELEMENT_LIMITS.items()}
        self.max_bytes = c["max_bytes"]
        self.table = NsTable(cap, lambda: [0, TopN(self.n), set()])

    def add(self, groups: Groups) -> None:
        limits, max_bytes = self.limits, self.max_bytes
        for ns, facts in groups.items():
            state = None
            for key, kind, _ttl, size, count in facts:
                limit = limits.get(kind)
                if limit is None:
                    continue
                if (count is not None and count > limit) or (size is not None and size > max_bytes):
                    state = state or self.table[ns]
                    state[0] += 1
                    state[1].offer(count or 0, key, (kind, size))
                    state[2].add(kind)

    def findings(self) -> list[Finding]:
        out = []
        for ns, (over, top, kinds) in self.table.items():
            name = ns_text(ns, self.delimiter)
            biggest = top.sorted()
            out.append(
                Finding(
                    self.rule,
                    name,
                    f"{over:,} {'/'.join(sorted(kinds))} keys in {name} are big "
                    f"(largest {biggest[0][0]:,} elements)",
                    {
                        "keys_over": over,
                        "types": sorted(kinds),
                        "limits": {**self.limits, "bytes": self.max_bytes},
                        "top": [
                            {"key": key_text(k), "type": t, "elements": n, "memory": m}
                            for n, k, (t, m) in biggest
                        ],
                    },
                    weight=biggest[0][0],
                )
            )
        return out


class NoNamespace(Observer):
    rule = "no-namespace"

    def __init__(
        self, config: AuditConfig, delimiter: bytes, layouts: LayoutTally | None = None
    ) -> None:
        c = config.of(self.rule)
        self.delimiter, self.min_keys, self.n = delimiter, c["min_keys"], c["examples"]
        self.keys = 0
        self.layouts = layouts
        # keys without the delimiter and a few examples, per known library (-1: none)
        self.buckets: dict[int, list[Any]] = {}

    def add(self, groups: Groups) -> None:
        delimiter, buckets = self.delimiter, self.buckets
        page = self.layouts.page if self.layouts is not None else {}
        for ns, facts in groups.items():
            self.keys += len(facts)
            marks = page.get(ns)
            for i, fact in enumerate(facts):
                if delimiter not in fact[0]:
                    bucket = buckets.setdefault(marks[i] if marks else -1, [0, []])
                    bucket[0] += 1
                    if len(bucket[1]) < self.n:
                        bucket[1].append(fact[0])

    def findings(self) -> list[Finding]:
        present = self.layouts.present() if self.layouts is not None else set()
        plain, examples = 0, []
        for lib, (count, kept) in sorted(self.buckets.items()):  # ordinary keys (-1) first
            if lib not in present:  # a library not shown to be there: ordinary keys too
                plain += count
                examples += kept[: self.n - len(examples)]
        if plain < max(self.min_keys, 1):
            return []
        share = plain / self.keys
        shown = self.delimiter.decode("utf-8", "backslashreplace")
        return [
            Finding(
                self.rule,
                "(root)",
                f"{plain:,} keys ({share:.1%}) have no '{shown}' in their name",
                {
                    "keys": plain,
                    "share": round(share, 4),
                    "delimiter": shown,
                    "examples": [key_text(k) for k in examples],
                },
                weight=plain,
            )
        ]


class LongKeyNames(_OverLimit):
    rule = "long-key-names"

    def measure(self, fact: tuple) -> tuple[int, Any, Any] | None:
        return len(fact[0]), key_text(fact[0]), None

    def findings(self) -> list[Finding]:
        out = []
        for ns, (over, top) in self.table.items():
            name = ns_text(ns, self.delimiter)
            longest = top.sorted()
            out.append(
                Finding(
                    self.rule,
                    name,
                    f"{over:,} keys in {name} have names over {self.max_bytes:,} bytes "
                    f"(longest {longest[0][0]:,})",
                    {
                        "keys_over": over,
                        "max_bytes": self.max_bytes,
                        "longest_bytes": longest[0][0],
                        "examples": [{"key": k, "length": n} for n, k, _ in longest],
                    },
                    weight=longest[0][0],
                )
            )
        return out
