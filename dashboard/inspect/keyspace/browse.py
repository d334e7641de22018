"""The key browser: find keys by glob and type, a bounded page at a time.

A viewer asks for a page (``match``, ``type``, a cursor from the previous page); one
request runs ``SCAN cursor MATCH m COUNT c TYPE t`` on each primary in turn until it
has ``limit`` keys or has examined ``budget`` keys (the sum of the COUNTs), then asks
for every found key's type, TTL, memory and element count in one read-only script
call per node (the keyspace scan's ``lua/scan_batch.lua``; the pipeline path where
scripting is refused). The cursor it answers with resumes the walk exactly where it
stopped, on every node of a cluster, so paging to the end visits every key that
existed for the whole walk (SCAN's guarantee), however big the keyspace.

COUNT adapts to the share of keys that match: a glob that matches one key in a
thousand gets COUNTs near ``scan_count`` (never more), ``*`` gets COUNT near the page
size, so a page overshoots ``limit`` by at most one SCAN reply.

Nothing here is cached or kept between requests: the cursor carries the state.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dashboard.connection import is_cluster
from dashboard.inspect.keyspace.rollup import Rollup
from dashboard.inspect.keyspace.scan import NodeScanner, ScanOptions
from dashboard.inspect.nodes import node_clients
from dashboard.keyid import display_key, key_address, readable_name

MAX_LIMIT = 1000
MAX_MATCH = 1024  # bytes of a glob; longer ones cost the server and say nothing useful
ROOT = "(root)"  # the ``scope`` of keys outside any namespace (no delimiter, or an id first)
_TYPE_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")
_CURSOR = re.compile(r"\d{1,20}")


class BrowseError(ValueError):
    """A query the browser cannot run (bad cursor, glob, type); the message says why."""


@dataclass(frozen=True)
class BrowseQuery:
    """One page request. ``scope`` ``(root)`` keeps only keys outside every namespace."""

    match: str = "*"
    type: str = ""
    scope: str = ""
    cursor: str = ""
    limit: int = 100
    budget: int = 20_000

    def __post_init__(self) -> None:
        if not self.match:
            object.__setattr__(self, "match", "*")
        if len(self.match.encode("utf-8", "surrogateescape")) > MAX_MATCH:
            raise BrowseError(f"match is longer than {MAX_MATCH} bytes")
        if self.type and not _TYPE_NAME.fullmatch(self.type):
            raise BrowseError(f"type must be a Redis type name like hash, got {self.type[:40]!r}")
        if self.scope not in ("", ROOT):
            raise BrowseError(f"scope must be empty or {ROOT}, got {self.scope[:40]!r}")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise BrowseError(f"limit must be between 1 and {MAX_LIMIT}, got {self.limit}")
        if self.budget < 1:
            raise BrowseError("budget must be at least 1")


def parse_cursor(token: str, nodes: list[str]) -> dict[str, int]:
    """``{node: cursor}`` still to walk. Standalone: ``"123"``; a cluster:
    ``"host:port=123,host:port=0"`` (nodes not named are done). Empty: start."""
    if not token:
        return dict.fromkeys(nodes, 0)
    if len(nodes) == 1 and _CURSOR.fullmatch(token):
        return {nodes[0]: int(token)}
    walk: dict[str, int] = {}
    for part in token.split(","):
        node, _, cursor = part.rpartition("=")
        if node not in nodes or not _CURSOR.fullmatch(cursor):
            raise BrowseError(
                "this cursor does not belong to this server (the cluster changed, or it was "
                "edited): start the listing again"
            )
        walk[node] = int(cursor)
    return walk


def format_cursor(walk: dict[str, int], nodes: list[str]) -> str | None:
    """The token for :func:`parse_cursor`; None when every node is done."""
    if not walk:
        return None
    if len(nodes) == 1:
        return str(walk[nodes[0]])
    return ",".join(f"{node}={cursor}" for node, cursor in walk.items())


def _next_count(limit: int, found: int, examined: int, matched: int, left: int, top: int) -> int:
    """SCAN COUNT for the next call: enough to fill the page at the match rate seen."""
    rate = matched / examined if examined else 1.0
    want = (limit - found) / max(rate, 1.0 / top)
    return int(max(10, min(want, top, max(left, 10))))


def _entry(fact: tuple[Any, ...], node: str | None) -> dict[str, Any]:
    key, kind, ttl, size, count = fact
    return {
        "key": display_key(key),
        "id": key_address(key),
        "name": readable_name(key),
        "length": len(key),
        "type": kind,
        "ttl_ms": ttl,
        "bytes": size,
        "count": count,
        "node": node,
    }


def browse(
    client: Any,
    query: BrowseQuery,
    options: ScanOptions,
    *,
    nodes: Callable[[Any], list[tuple[str, str, Any]]] = node_clients,
) -> dict[str, Any]:
    """One page of keys matching ``query`` and where the next page starts."""
    found_nodes = sorted(nodes(client), key=lambda n: n[0])
    names = [address for address, _, _ in found_nodes]
    conns = {address: conn for address, _, conn in found_nodes}
    walk = parse_cursor(query.cursor, names)
    cluster = is_cluster(client)
    rollup = Rollup(options.delimiter, options.depth) if query.scope == ROOT else None
    top = max(10, options.max_count)
    found: dict[str, list[bytes]] = {}
    examined = calls = matched = total = 0
    stopped = "end"
    for node in list(walk):
        seen: set[bytes] = set()
        keys = found.setdefault(node, [])
        while node in walk:
            if total >= query.limit:
                stopped = "limit"
                break
            if examined >= query.budget:
                stopped = "budget"
                break
            left = query.budget - examined
            count = _next_count(query.limit, total, examined, matched, left, top)
            kwargs: dict[str, Any] = {"match": query.match, "count": count}
            if query.type:
                kwargs["_type"] = query.type
            cursor, raw = conns[node].scan(walk[node], **kwargs)
            calls, examined = calls + 1, examined + count
            for key in raw:
                key = key if isinstance(key, bytes) else str(key).encode("utf-8")
                if key in seen or (rollup is not None and rollup.namespace(key)):
                    continue
                seen.add(key)
                keys.append(key)
                total += 1
            matched += len(raw)
            if int(cursor) == 0:
                del walk[node]
            else:
                walk[node] = int(cursor)
        if stopped != "end":
            break
    entries: list[dict[str, Any]] = []
    vanished = refused = 0
    path = None
    for node, keys in found.items():
        scanner = NodeScanner(conns[node], options, name=node, cluster=cluster)
        for start in range(0, len(keys), top):
            facts, gone, denied, _us = scanner.facts(keys[start : start + top])
            entries += [_entry(f, node if cluster else None) for f in facts]
            vanished, refused = vanished + gone, refused + denied
        path = scanner.path or path
    return {
        "keys": entries,
        "examined": examined,
        "scan_calls": calls,
        "vanished": vanished,
        "refused": refused,
        "stopped": stopped if walk else "end",
        "complete": not walk,
        "next": format_cursor(walk, names),
        "nodes": len(names),
        "path": path,
    }


def dbsize(client: Any, nodes: Callable[[Any], list[tuple[str, str, Any]]] = node_clients) -> int:
    """Keys in the database, summed over primaries (the "of about M" of a listing)."""
    return sum(int(conn.dbsize()) for _, _, conn in nodes(client))
