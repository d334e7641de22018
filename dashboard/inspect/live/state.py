"""Live rate-limit and lock state: find the keys, read them, group them for the views.

Finding never blocks Redis: SCAN with each layout's MATCH pattern on every primary
(a cluster's too), ``COUNT`` = ``scan_count``, at most ``live_scan_keys`` keys examined
per refresh. A pass that does not finish in one refresh continues on the next (the
cursors are kept in :class:`KeySearch`) while the keys found so far stay listed, and
at most ``live_max_keys`` keys are tracked. Reading uses the pattern layer's read
sides for our own keys and ``dashboard.inspect.live.foreign`` for the rest, on the node
that holds the key.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from dashboard.inspect.errors import CONNECTION_ERRORS
from dashboard.inspect.live import foreign, ownership
from dashboard.inspect.live.detectors import LOCK, RATELIMIT, Claim, Detectors
from dashboard.inspect.nodes import node_clients
from dashboard.keyid import display_key, key_address
from dashboard.patterns.locks import INFO_COUNTERS, lock_state, parse_lock_key
from dashboard.patterns.ratelimit import limiter_state


@dataclass
class _Walk:
    cursor: int = 0
    done: bool = False


class KeySearch:
    """Rolling, bounded discovery of one kind of key (one per app and kind).

    A complete pass is repeated only after ``max(min_rescan_s, RESCAN_FACTOR x its
    duration)``: in between, the keys found are re-read but the keyspace is not walked
    again, so a big keyspace costs SCAN time only a small share of the time.
    """

    RESCAN_FACTOR = 5

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, min_rescan_s: float = 2.0
    ) -> None:
        self.min_rescan_s = min_rescan_s
        self._pass_started: float | None = None
        self._pass_ended: float | None = None
        self._lock = threading.Lock()
        self._signature: tuple[Any, ...] = ()
        self._walks: dict[tuple[str, str], _Walk] = {}
        self._pass: dict[bytes, str] = {}  # key -> node, found in the running pass
        self._known: dict[bytes, str] = {}  # the last complete pass
        self._capped = False
        self.passes = 0
        self.clock = clock
        self._first_seen: dict[tuple[bytes, str], float] = {}

    def advance(
        self,
        nodes: list[tuple[str, Any]],
        patterns: list[str],
        count: int,
        budget: int,
        max_keys: int,
    ) -> tuple[dict[bytes, str], dict[str, Any]]:
        """SCAN on until the pass is complete or ``budget`` keys were examined; returns
        ``{key: node address}`` and a report of how far the search got."""
        errors: list[str] = []
        with self._lock:
            signature = (tuple(a for a, _ in nodes), tuple(patterns))
            if signature != self._signature:
                self._signature, self._walks, self._known = signature, {}, {}
            if all(w.done for w in self._walks.values()) and self._rescan_due():
                self._walks = {(a, p): _Walk() for a, _ in nodes for p in patterns}
                self._pass, self._capped = {}, False
                self._pass_started = self.clock()
            conns = dict(nodes)
            examined = calls = 0
            pending = [k for k, w in self._walks.items() if not w.done]
            while pending and examined < budget:
                for address, pattern in pending:
                    walk = self._walks[(address, pattern)]
                    try:
                        cursor, keys = conns[address].scan(walk.cursor, match=pattern, count=count)
                    except CONNECTION_ERRORS:
                        raise  # the walk keeps its cursor; the observer keeps the last reading
                    except RedisError as exc:
                        errors.append(f"SCAN MATCH {pattern} on {address}: {exc}")
                        walk.done = True
                        continue
                    calls, examined = calls + 1, examined + count
                    self._add(keys, address, max_keys)
                    walk.cursor, walk.done = int(cursor), int(cursor) == 0
                    if examined >= budget:
                        break
                pending = [k for k, w in self._walks.items() if not w.done]
            complete = not pending
            if complete and calls:
                self._known, self.passes = dict(self._pass), self.passes + 1
                self._pass_ended = self.clock()
                found = self._known
            else:
                found = dict(list({**self._known, **self._pass}.items())[:max_keys])
            report = {
                "patterns": patterns,
                "nodes": len(nodes),
                "scan_calls": calls,
                "examined": examined,
                "complete": complete,
                "passes": self.passes,
                "found": len(found),
                "capped": self._capped or not complete,
                "cap_reason": _cap_reason(complete, self._capped, examined, max_keys),
                "errors": errors,
            }
        return found, report

    def expire(self) -> None:
        """Start a new pass at the next advance (an explicit refresh asks for it)."""
        with self._lock:
            self._pass_ended = None

    def _rescan_due(self) -> bool:
        if self._pass_started is None or self._pass_ended is None:
            return True
        took = self._pass_ended - self._pass_started
        return self.clock() - self._pass_ended >= max(self.min_rescan_s, self.RESCAN_FACTOR * took)

    def _add(self, keys: list[bytes], address: str, max_keys: int) -> None:
        for key in keys:
            if key in self._pass:
                continue
            if len(self._pass) >= max_keys:
                self._capped = True
                return
            self._pass[bytes(key)] = address

    def seen_ms(self, entries: list[dict[str, Any]]) -> None:
        """Stamp ``seen_ms``: how long this process has seen the same holder of a lock."""
        now = self.clock()
        with self._lock:
            seen = {}
            for entry in entries:
                mark = (entry["_key"], str(entry.get("holder")))
                seen[mark] = self._first_seen.get(mark, now)
                entry["seen_ms"] = round((now - seen[mark]) * 1000) if entry["held"] else None
            self._first_seen = seen


def _cap_reason(complete: bool, capped: bool, examined: int, max_keys: int) -> str | None:
    if capped:
        return (
            f"more than {max_keys:,} matching keys: showing {max_keys:,} (live_max_keys); "
            "narrow the patterns or raise the cap"
        )
    if not complete:
        return (
            f"this refresh examined about {examined:,} keys (live_scan_keys) without "
            "finishing the keyspace; the search goes on with every refresh"
        )
    return None


Skipped = list[tuple[bytes, str]]  # keys the search found that are not shown, and why
MAX_SKIPPED_SHOWN = 10


def _claims(
    detectors: Detectors, kind: str, found: dict[bytes, str], skipped: Skipped
) -> dict[str, list[Claim]]:
    """Claims per node, one per piece of state (a lock and its companions are one
    candidate, whose fallbacks remember every key found for it)."""
    by_node: dict[str, dict[bytes, Claim]] = {}
    for key, address in found.items():
        claim = detectors.claim(kind, key)
        if claim is None:
            skipped.append((key, detectors.why_not(kind, key)))
            continue
        claims = by_node.setdefault(address, {})
        known = claims.get(claim.key)
        claims[claim.key] = claim if known is None else ownership.merge(known, claim)
    return {address: list(claims.values()) for address, claims in by_node.items()}


def _skipped_report(skipped: Skipped) -> dict[str, Any]:
    return {
        "keys": len(skipped),
        "examples": [
            {"key": display_key(key), "id": key_address(key), "reason": reason}
            for key, reason in skipped[:MAX_SKIPPED_SHOWN]
        ],
    }


def _stamp(entry: dict[str, Any], claim: Claim, address: str) -> dict[str, Any]:
    entry.update(
        layout=entry.get("layout") or claim.layout,
        key=display_key(claim.key),
        id=key_address(claim.key),
        node=address,
        _key=claim.key,
    )
    return entry


def _server_ms(conn: Any) -> int:
    seconds, micros = conn.time()
    return int(seconds) * 1000 + int(micros) // 1000


Read = list[tuple[Claim, dict[str, Any]]]


def _read_limiters(conn: Any, claims: list[Claim], skipped: Skipped) -> Read:
    out = []
    for claim in (c for c in claims if c.reader == "ours"):
        state = limiter_state(conn, claim.key)
        if state["exists"]:
            state["limiter"], state["identity"] = state.pop("name"), claim.subject
            out.append((claim, state))
    others = [c for c in claims if c.reader != "ours"]
    if others:
        out += foreign.read_ratelimits(conn, others, _server_ms(conn))
    return out


_NOT_RECORDED = (
    "its holder is not the one our :info recorded: code other than dashboard.patterns.locks "
    "wrote this key"
)


def _read_locks(conn: Any, claims: list[Claim], skipped: Skipped) -> Read:
    """Our candidates with evidence via ``lock_state``; every other key as a string lock."""
    ours, others = ownership.resolve(conn, claims)
    out = []
    for claim, evidence in ours:
        state = lock_state(conn, parse_lock_key(claim.key) or b"?")
        if evidence == "fence":  # the stats hash expired: its counters are unknown, not 0
            state.update(dict.fromkeys(INFO_COUNTERS), avg_hold_ms=None)
        if not (state["held"] or state["attempts"]):  # e.g. only the fence is left
            found = [c.key for c in claim.fallback] or [claim.key]
            skipped += [(key, "our layer's idle lock: no holder and no stats") for key in found]
            continue
        state["layout"] = "dashboard"
        if state["held"] and state["fence"] is None and not state["problem"]:
            state["problem"] = _NOT_RECORDED
        out.append((claim, state))
    if others:
        out += foreign.read_locks(conn, others, skipped)
    return out


def read_live(
    client: Any, settings: Any, search: KeySearch, detectors: Detectors, kind: str
) -> dict[str, Any]:
    """One refresh of ``kind`` (ratelimit or lock): advance the search, read every claimed
    key on its node. The observer calls this once per cadence, whoever is watching;
    :func:`ratelimit_view` and :func:`lock_view` shape the result for a page."""
    nodes = [(address, conn) for address, _, conn in node_clients(client)]
    found, report = search.advance(
        nodes,
        detectors.patterns(kind),
        settings.scan_count,
        settings.live_scan_keys,
        settings.live_max_keys,
    )
    errors = [*detectors.problems, *report.pop("errors")]
    reader = _read_limiters if kind == RATELIMIT else _read_locks
    entries: list[dict[str, Any]] = []
    conns = dict(nodes)
    skipped: Skipped = []
    for address, claims in _claims(detectors, kind, found, skipped).items():
        try:
            read = reader(conns[address], claims, skipped)
            entries += [_stamp(s, c, address) for c, s in read]
        except CONNECTION_ERRORS:
            raise  # a reading with a node missing is not "nothing there"
        except RedisError as exc:
            errors.append(f"reading {len(claims)} keys on {address}: {exc}")
    report["skipped"] = _skipped_report(skipped)
    if kind == LOCK:
        search.seen_ms([e for e in entries if e["held"]])
    layouts = detectors.layouts(kind)
    return {"entries": entries, "search": report, "errors": errors, "layouts": layouts}


_FILTER_FIELDS = ("limiter", "identity", "resource", "key", "layout")


def _matching(entries: list[dict[str, Any]], q: str) -> list[dict[str, Any]]:
    needle = q.strip().lower()
    if not needle:
        return list(entries)
    return [e for e in entries if any(needle in str(e.get(f, "")).lower() for f in _FILTER_FIELDS)]


def _public(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if not k.startswith("_")}


def _usage(entry: dict[str, Any]) -> float:
    return entry["used"] / entry["limit"] if entry.get("limit") else 0.0


def ratelimit_view(reading: dict[str, Any], settings: Any, q: str = "") -> dict[str, Any]:
    """Everything ``/ratelimits`` shows, from one :func:`read_live` reading: limiters
    with their identities, top consumers. ``q`` filters (no Redis call)."""
    entries = [dict(e) for e in _matching(reading["entries"], q)]
    report, errors = reading["search"], reading["errors"]
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for e in entries:
        gid = (e["layout"], e["limiter"], e["algorithm"], e["limit"], e["window_ms"])
        group = groups.setdefault(
            gid,
            dict(zip(("layout", "limiter", "algorithm", "limit", "window_ms"), gid, strict=True))
            | {"identities": 0, "blocked": 0, "used": 0, "entries": []},
        )
        group["identities"] += 1
        group["blocked"] += e["blocked"]
        group["used"] += e["used"]
        group["entries"].append(_public(e))
    limiters = sorted(groups.values(), key=lambda g: (-g["blocked"], -g["used"], g["limiter"]))
    for group in limiters:
        group["entries"].sort(key=lambda e: (not e["blocked"], -_usage(e), e["identity"]))
    busy = [e for e in entries if e["used"] > 0 or e["blocked"]]
    busy.sort(key=lambda e: (not e["blocked"], -_usage(e), -e["used"]))
    return {
        "limiters": limiters,
        "top_consumers": [_public(e) for e in busy[: settings.top_n]],
        "totals": {
            "limiters": len(limiters),
            "identities": len(entries),
            "blocked": sum(e["blocked"] for e in entries),
        },
        "search": report,
        "errors": errors,
        "layouts": reading["layouts"],
        "q": q,
        "live": bool(entries) or not report["complete"],
        "allow_writes": settings.allow_writes,
    }


def lock_view(reading: dict[str, Any], settings: Any, q: str = "") -> dict[str, Any]:
    """Everything ``/locks`` shows, from one :func:`read_live` reading: held locks
    (flagged first) and idle ones with stats. ``q`` filters (no Redis call)."""
    entries = [dict(e) for e in _matching(reading["entries"], q)]
    report, errors = reading["search"], reading["errors"]
    held = [e for e in entries if e["held"]]
    for e in held:
        flags = (("held forever", e["held_forever"]), ("unusually long", e["unusually_long"]))
        e["flags"] = [flag for flag, on in flags if on]
    held.sort(key=lambda e: (not e["flags"], -(e["age_ms"] or e["seen_ms"] or 0), e["resource"]))
    recent = [e for e in entries if not e["held"]]
    recent.sort(key=lambda e: (-(e["failures"] or 0), -(e["attempts"] or 0), e["resource"]))
    return {
        "locks": [_public(e) for e in held],
        "recent": [_public(e) for e in recent],
        "totals": {
            "held": len(held),
            "held_forever": sum(e["held_forever"] for e in held),
            "unusually_long": sum(e["unusually_long"] for e in held),
            "contended": sum(1 for e in entries if e.get("failures")),
        },
        "search": report,
        "errors": errors,
        "layouts": reading["layouts"],
        "q": q,
        "live": bool(held) or not report["complete"],
        "allow_writes": settings.allow_writes,
    }
