"""Namespace rollup: per-namespace aggregates and top-N heaps, never per-key state.

A key's namespace is its leading delimiter-separated segments, at most ``depth``
of them, never including the key's last segment (its own name), and stopping at
the first segment that looks like an identifier (:func:`is_id_segment`)::

    user:123:profile   -> user            (123 is an id)
    cache:product:42   -> cache:product
    session            -> (root bucket)   (no delimiter)

Memory is bounded by ``max_namespaces x top_n``: each namespace keeps counters
and small heaps; namespaces beyond the cap fold into one ``(other)`` node that
counts the keys it absorbed. During a scan only the namespace a key lands in is
updated; :meth:`Rollup.to_json` builds the tree, where every prefix level
aggregates its children (heaps merge exactly: a parent's top-N is within the
union of its children's top-N). Keys are bytes throughout; JSON shows them with
:func:`~dashboard.keyid.display_key` and links them with
:func:`~dashboard.keyid.key_address`. The JSON shape is in docs/scan.md.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Iterator
from typing import Any

from dashboard.inspect.layouts import LayoutTally
from dashboard.keyid import display_key, encode_key, key_address

TTL_BUCKETS = ("<1m", "<1h", "<1d", "<7d", ">=7d", "none", "unknown")
_TTL_LIMITS_MS = (60_000, 3_600_000, 86_400_000, 604_800_000)
_NONE, _UNKNOWN = 5, 6
NO_SIZES = "MEMORY USAGE gave no size for these keys"
_WORD_CACHE = 65_536
MAX_SEGMENT_BYTES = 64

_NUMERIC = re.compile(rb"[0-9][0-9._-]*")  # 42, 2024-01-31, 10.0.0.1, 1.5
_UUID = re.compile(
    rb"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
)
_HEX = re.compile(rb"[0-9a-fA-F]{16,}")
_DIGIT = re.compile(rb"[0-9]")
_TOKEN = re.compile(rb"[A-Za-z0-9_+/=-]{16,}")
_SWITCH = re.compile(rb"[A-Za-z][0-9]|[0-9][A-Za-z]")


def is_id_segment(segment: bytes) -> bool:
    """Whether a key segment is data (an id) rather than a namespace word.

    Ids: digits with optional ``. _ -`` (``42``, ``2024-01-31``, ``10.0.0.1``); a UUID
    (with or without dashes); 16+ hex characters with a digit (digests, ObjectIds);
    a 16+ character token of ``[A-Za-z0-9_+/=-]`` that switches between letters and
    digits at least 4 times (base64, ULID, nanoid); anything over 64 bytes; bytes
    that are not UTF-8 or contain control characters. An empty segment is not an id.
    """
    if not segment:
        return False
    if segment.isdigit() or len(segment) > MAX_SEGMENT_BYTES:
        return True
    if not segment.isascii():
        try:
            text = segment.decode("utf-8")
        except UnicodeDecodeError:
            return True
        return not text.isprintable()
    if any(b < 0x20 or b == 0x7F for b in segment):
        return True
    if _NUMERIC.fullmatch(segment) or _UUID.fullmatch(segment):
        return True
    if _HEX.fullmatch(segment) and _DIGIT.search(segment):
        return True
    return bool(_TOKEN.fullmatch(segment)) and len(_SWITCH.findall(segment)) >= 4


def ttl_bucket(ttl_ms: int | None) -> str:
    """The histogram bucket of a PTTL value (-1: none; None: unknown)."""
    return TTL_BUCKETS[_ttl_index(ttl_ms)]


def _ttl_index(ttl: int | None) -> int:
    if ttl is None:
        return _UNKNOWN
    if ttl < 0:
        return _NONE
    for i, limit in enumerate(_TTL_LIMITS_MS):
        if ttl < limit:
            return i
    return 4


# One key's facts: (key, type, pttl_ms (-1 none, None unknown), bytes or None, count or None).
Fact = tuple[bytes, str, int | None, int | None, int | None]
# A heap entry: (metric, key, type, ttl_ms, bytes, count). Ties on the metric are
# broken by the key bytes, so the kept top-N does not depend on the scan order.
_Entry = tuple[int, bytes, str, int | None, int | None, int | None]


def _offer(heap: list[_Entry], entry: _Entry, n: int) -> None:
    if len(heap) < n:
        if entry not in heap:  # SCAN may return a key twice while the table rehashes
            heapq.heappush(heap, entry)
    elif entry[:2] > heap[0][:2] and entry not in heap:
        heapq.heapreplace(heap, entry)


class Stats:
    """Counters and top-N heaps of one namespace (or of a whole subtree once merged)."""

    __slots__ = ("bytes", "keys", "top_bytes", "top_count", "ttl", "types", "unsized")

    def __init__(self) -> None:
        self.keys = 0
        self.bytes = 0
        self.unsized = 0  # keys whose MEMORY USAGE was unavailable
        self.types: dict[str, list[int]] = {}  # type -> [keys, bytes]
        self.ttl = [0] * len(TTL_BUCKETS)
        self.top_bytes: list[_Entry] = []
        self.top_count: dict[str, list[_Entry]] = {}

    def add_many(self, facts: list[Fact], n: int) -> None:
        """Count a list of facts (the hot path: locals, and heap floors checked first)."""
        self.keys += len(facts)
        types, ttl_counts, top_count = self.types, self.ttl, self.top_count
        top_bytes = self.top_bytes
        floor = top_bytes[0][0] if len(top_bytes) >= n else -1
        total = unsized = 0
        for fact in facts:
            key, kind, ttl, size, count = fact
            per_type = types.get(kind)
            if per_type is None:
                per_type = types[kind] = [0, 0]
            per_type[0] += 1
            if size is None:
                unsized += 1
            else:
                total += size
                per_type[1] += size
                if size >= floor:
                    _offer(top_bytes, (size, key, kind, ttl, size, count), n)
                    floor = top_bytes[0][0] if len(top_bytes) >= n else -1
            if ttl == -1:
                ttl_counts[_NONE] += 1
            else:
                ttl_counts[_ttl_index(ttl)] += 1
            if count is not None:
                heap = top_count.get(kind)
                if heap is None:
                    heap = top_count[kind] = []
                if len(heap) < n or count >= heap[0][0]:
                    _offer(heap, (count, key, kind, ttl, size, count), n)
        self.bytes += total
        self.unsized += unsized

    def merge(self, other: Stats, n: int) -> None:
        """Fold ``other`` into this one (exact for counters and for the top-N)."""
        self.keys += other.keys
        self.bytes += other.bytes
        self.unsized += other.unsized
        for kind, (keys, size) in other.types.items():
            mine = self.types.setdefault(kind, [0, 0])
            mine[0] += keys
            mine[1] += size
        self.ttl = [a + b for a, b in zip(self.ttl, other.ttl, strict=True)]
        for entry in other.top_bytes:
            _offer(self.top_bytes, entry, n)
        for kind, heap in other.top_count.items():
            mine_heap = self.top_count.setdefault(kind, [])
            for entry in heap:
                _offer(mine_heap, entry, n)


class Rollup:
    """Aggregates key facts by namespace; feed it with :meth:`add` / :meth:`add_batch`."""

    def __init__(
        self,
        delimiter: bytes | str = b":",
        depth: int = 3,
        top_n: int = 10,
        max_namespaces: int = 10_000,
    ) -> None:
        if isinstance(delimiter, str):
            delimiter = delimiter.encode("utf-8")
        if not delimiter or depth < 1 or top_n < 1 or max_namespaces < 1:
            raise ValueError("need a delimiter, depth >= 1, top_n >= 1 and max_namespaces >= 1")
        self.delimiter = delimiter
        self.depth = depth
        self.top_n = top_n
        self.max_namespaces = max_namespaces
        self.nodes: dict[tuple[bytes, ...], Stats] = {(): Stats()}  # () is the root bucket
        self.other = Stats()
        self.folded_keys = 0
        self._words: dict[bytes, bool] = {}
        # each node's ``owner``; its namespace cap counts the root bucket, ours does not
        self.layouts = LayoutTally(delimiter, max_namespaces + 1)
        # Why no key could be sized (MEMORY USAGE refused or missing), set by the scan.
        self.bytes_reason: str | None = None

    def namespace(self, key: bytes) -> tuple[bytes, ...]:
        """The namespace segments of ``key`` (empty tuple: the root bucket)."""
        parts = key.split(self.delimiter, self.depth)
        if len(parts) == 1:
            return ()
        del parts[-1]  # the key's own name (or the rest beyond depth)
        words = self._words
        for i, segment in enumerate(parts):
            if segment in words:
                continue
            if segment.isdigit() or is_id_segment(segment):
                return tuple(parts[:i])
            if len(words) >= _WORD_CACHE:
                words.clear()
            words[segment] = False
        return tuple(parts)

    def add(
        self, key: bytes, kind: str, ttl: int | None, size: int | None, count: int | None
    ) -> None:
        """Count one key (``ttl`` in ms, -1 none, None unknown; None size/count: unknown)."""
        self.add_batch([(key, kind, ttl, size, count)])

    def group(self, facts: Iterable[Fact]) -> dict[tuple[bytes, ...], list[Fact]]:
        """A page's facts by namespace (the split every consumer of a page shares: the
        rollup itself and the audit's key rules)."""
        namespace = self.namespace
        groups: dict[tuple[bytes, ...], list[Fact]] = {}
        for fact in facts:
            ns = namespace(fact[0])
            group = groups.get(ns)
            if group is None:
                groups[ns] = [fact]
            else:
                group.append(fact)
        return groups

    def add_batch(self, facts: Iterable[Fact]) -> None:
        """Count a page of ``(key, type, ttl_ms, bytes, count)`` facts."""
        groups = self.group(facts)
        for ns, group in groups.items():
            self._stats_for(ns, len(group)).add_many(group, self.top_n)
            self.layouts.add(ns, group)

    def _stats_for(self, ns: tuple[bytes, ...], keys: int) -> Stats:
        stats = self.nodes.get(ns)
        if stats is not None:
            return stats
        if len(self.nodes) > self.max_namespaces:  # the root bucket does not count
            self.folded_keys += keys
            return self.other
        stats = self.nodes[ns] = Stats()
        return stats

    def merge(self, other: Rollup) -> None:
        """Fold in another rollup built with the same settings (a scan keeps one per
        shard, so a shard whose walk must be redone can be dropped on its own)."""
        for ns, stats in other.nodes.items():
            self._stats_for(ns, stats.keys).merge(stats, self.top_n)
        self.other.merge(other.other, self.top_n)
        self.folded_keys += other.folded_keys
        self.layouts.merge(other.layouts)

    @property
    def analysed_keys(self) -> int:
        return sum(s.keys for s in self.nodes.values()) + self.other.keys

    def to_json(self, factor: float = 1.0) -> dict[str, Any]:
        """The tree as plain JSON data; counters are multiplied by ``factor`` (sampling).

        Key entries are shared between the levels that list the same key: read them,
        do not mutate them.
        """
        n = self.top_n
        shown: dict[bytes, dict[str, Any]] = {}
        own: dict[tuple[bytes, ...], Stats] = {}
        children: dict[tuple[bytes, ...], list[tuple[bytes, ...]]] = {}
        for ns in self.nodes:
            if not ns:
                continue
            for level in range(1, len(ns) + 1):
                path = ns[:level]
                if path not in own:
                    own[path] = Stats()
                    children.setdefault(ns[: level - 1], []).append(path)
        totals: dict[tuple[bytes, ...], Stats] = {}
        for path in sorted(own, key=len, reverse=True):  # deepest first
            total = Stats()
            total.merge(self.nodes.get(path, own[path]), n)
            for child in children.get(path, ()):
                total.merge(totals[child], n)
            totals[path] = total
        grand = Stats()
        for path in children.get((), ()):
            grand.merge(totals[path], n)
        grand.merge(self.nodes[()], n)
        grand.merge(self.other, n)

        def build(path: tuple[bytes, ...]) -> dict[str, Any]:
            direct = self.nodes.get(path, own[path])
            kids = [build(child) for child in children.get(path, ())]
            return self._node("namespace", path, totals[path], direct, kids, factor, shown)

        top = [build(path) for path in children.get((), ())]
        if self.nodes[()].keys:
            root = self.nodes[()]
            top.append(self._node("root", (), root, root, [], factor, shown))
        if self.other.keys:
            top.append(self._node("other", (), self.other, self.other, [], factor, shown))
        tree = self._node("total", (), grand, self.nodes[()], top, factor, shown)
        return {
            "tree": tree,
            "namespaces": len(self.nodes) - 1,
            "folded_keys": self.folded_keys,
            "analysed_keys": grand.keys,
            "known_layouts": self.layouts.summary(),
            "settings": {
                "delimiter": display_key(self.delimiter),
                "depth": self.depth,
                "top_n": self.top_n,
                "max_namespaces": self.max_namespaces,
            },
        }

    def _node(
        self,
        kind: str,
        path: tuple[bytes, ...],
        total: Stats,
        direct: Stats,
        children: list[dict[str, Any]],
        factor: float,
        shown: dict[bytes, dict[str, Any]],
    ) -> dict[str, Any]:
        joined = self.delimiter.join(path)
        names = {"total": "(all keys)", "root": "(root)", "other": "(other)"}

        def scale(value: int) -> int:
            return value if factor == 1.0 else round(value * factor)

        with_ttl = sum(total.ttl[:_NONE])
        unknown = _unsized(total)  # no key was sized: the bytes are unknown, not zero
        node: dict[str, Any] = {
            "kind": kind,
            "name": names.get(kind) or display_key(path[-1]),
            "path": display_key(joined) if kind == "namespace" else None,
            "id": encode_key(joined) if kind == "namespace" else None,
            "depth": len(path),
            "keys": scale(total.keys),
            "bytes": None if unknown else scale(total.bytes),
            "bytes_unavailable": (self.bytes_reason or NO_SIZES) if unknown else None,
            "unsized_keys": scale(total.unsized),
            "direct_keys": scale(direct.keys),
            "direct_bytes": None if _unsized(direct) else scale(direct.bytes),
            "types": {
                kind_name: {"keys": scale(keys), "bytes": None if unknown else scale(size)}
                for kind_name, (keys, size) in sorted(
                    total.types.items(), key=lambda item: (-item[1][1], -item[1][0], item[0])
                )
            },
            "ttl": {
                "with_ttl": scale(with_ttl),
                "without_ttl": scale(total.ttl[_NONE]),
                "unknown": scale(total.ttl[_UNKNOWN]),
                "histogram": {b: scale(c) for b, c in zip(TTL_BUCKETS, total.ttl, strict=True)},
            },
            "top_bytes": _entries(total.top_bytes, shown),
            "top_count": {k: _entries(h, shown) for k, h in sorted(total.top_count.items())},
        }
        if kind == "other":
            node["folded_keys"] = scale(self.folded_keys)
        node["owner"] = self._owner(kind, path, direct, children)
        node["children"] = _sorted(children)
        return node

    def _owner(
        self, kind: str, path: tuple[bytes, ...], direct: Stats, children: list[dict[str, Any]]
    ) -> str | None:
        """The library whose known layout every key of the node belongs to (layouts.py)."""
        owners = [child["owner"] for child in children]
        if kind in ("namespace", "root") and direct.keys:
            owners.append(self.layouts.owner(path, direct.keys))
        if kind == "other" or not owners or any(o != owners[0] for o in owners):
            return None
        return owners[0]


def _entries(heap: list[_Entry], shown: dict[bytes, dict[str, Any]]) -> list[dict[str, Any]]:
    """Key entries, biggest first. A big key sits in the top-N of every level above it:
    its entry is built once per :meth:`Rollup.to_json` and shared (``shown``)."""
    out = []
    for entry in sorted(heap, reverse=True):
        item = shown.get(entry[1])
        if item is None:
            _metric, key, kind, ttl, size, count = entry
            item = shown[key] = {
                "key": display_key(key),
                "id": key_address(key),
                "length": len(key),
                "type": kind,
                "bytes": size,
                "count": count,
                "ttl_ms": ttl,
            }
        out.append(item)
    return out


def _unsized(stats: Stats) -> bool:
    """True when keys were counted but none of them could be sized."""
    return bool(stats.keys) and stats.unsized >= stats.keys


def _sorted(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    order = {"namespace": 0, "root": 1, "other": 2}
    return sorted(
        nodes, key=lambda d: (order[d["kind"]], -(d["bytes"] or 0), -d["keys"], d["name"])
    )


def iter_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of a JSON tree, depth first (for flat tables and tests)."""
    yield node
    for child in node["children"]:
        yield from iter_nodes(child)
