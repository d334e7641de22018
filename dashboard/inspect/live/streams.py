"""Every stream on the server, with its groups' lag and a short lag history.

* :class:`StreamFinder` finds streams with ``SCAN ... TYPE stream`` on every primary.
  A round examines at most ``budget`` keys (the sum of SCAN COUNTs) and then keeps
  its cursors, so a huge keyspace is covered over several page refreshes instead of
  one slow request; a finished sweep is repeated after ``max(min_rescan_s, 10 x its
  duration)``. At most ``max_streams`` streams are kept; more are counted, not kept.
* :class:`LagHistory` keeps a bounded ring of ``(time, lag, pending)`` per
  stream and group, in this process only, for sparklines and the "lag is growing"
  flag. It fills while someone looks (each /streams or /stream render samples).
* :func:`stream_summary` is one stream as the pages show it: :func:`stream_state`
  plus memory, trimming, consumer flags and the history.

The detail page's bounded windows (entries, pending entries, id checks) are in
:mod:`.streamwindows`, re-exported here.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

from redis.exceptions import NoPermissionError

from dashboard.connection import is_cluster
from dashboard.deadline import DeadlineExceeded
from dashboard.inspect.errors import CONNECTION_ERRORS, ERRORS, attempt, describe_error
from dashboard.inspect.live.streamwindows import (
    ENTRY_ID,
    FIELDS_SHOWN,
    MAX_ID_PART,
    MAX_WINDOW,
    check_id,
    entries_window,
    pending_window,
    raw_name,
)
from dashboard.inspect.nodes import node_clients as _node_clients
from dashboard.keyid import display_key, key_address
from dashboard.patterns.streams import GroupState, StreamStateError, stream_state

GROWING_WINDOW = 5  # samples: lag rose over all of them -> "growing"
_PATTERNS_KEPT = 8  # match patterns whose sweep state is remembered


# --- discovery ------------------------------------------------------------------------


@dataclass
class _Sweep:
    cursors: dict[str, int]  # node address -> next cursor; a finished node is removed
    conns: dict[str, Any]  # node address -> client of that primary
    found: dict[bytes, str] = field(default_factory=dict)  # key -> node address, in scan order
    not_kept: int = 0  # streams seen beyond max_streams (duplicates possible: SCAN may repeat)
    examined: int = 0
    started: float = 0.0
    finished: float = 0.0
    errors: dict[str, str] = field(default_factory=dict)


class StreamFinder:
    """Incremental, bounded ``SCAN TYPE stream`` over every primary, per match pattern."""

    def __init__(
        self,
        client: Any,
        *,
        max_streams: int = 100,
        scan_count: int = 1000,
        budget: int = 200_000,
        min_rescan_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        node_clients: Callable[[Any], list[tuple[str, str, Any]]] = _node_clients,
    ) -> None:
        self.client = client
        self.max_streams = max_streams
        self.scan_count = scan_count
        self.budget = budget
        self.min_rescan_s = min_rescan_s
        self._clock = clock
        self._node_clients = node_clients
        self._lock = threading.Lock()
        self._state: OrderedDict[str, tuple[_Sweep | None, _Sweep | None]] = OrderedDict()
        self._expired: set[str] = set()

    def find(self, match: str = "*") -> dict[str, Any]:
        """Advance the sweep for ``match`` by one bounded round; what is known so far.

        A concurrent caller does not scan twice: it gets the snapshot as it is.
        """
        if self._lock.acquire(blocking=False):
            try:
                self._advance(match)
            finally:
                self._lock.release()
        with self._lock:
            last, current = self._state.get(match, (None, None))
            return self._snapshot(match, last, current)

    def expire(self) -> None:
        """Let the next :meth:`find` start a new sweep (an explicit refresh asks for it)."""
        with self._lock:
            self._expired = set(self._state)

    def _advance(self, match: str) -> None:
        last, current = self._state.pop(match, (None, None))
        now = self._clock()
        expired = match in self._expired
        self._expired.discard(match)
        if current is None and (
            last is None or expired or now - last.finished >= self._rescan_after(last)
        ):
            nodes = {address: conn for address, _, conn in self._node_clients(self.client)}
            current = _Sweep(cursors=dict.fromkeys(nodes, 0), conns=nodes, started=now)
        if current is not None:
            self._round(current, match)
            if not current.cursors:
                current.finished = self._clock()
                last, current = current, None
        self._state[match] = (last, current)
        while len(self._state) > _PATTERNS_KEPT:
            self._state.popitem(last=False)

    def _rescan_after(self, sweep: _Sweep) -> float:
        return max(self.min_rescan_s, 10 * (sweep.finished - sweep.started))

    def _round(self, sweep: _Sweep, match: str) -> None:
        spent = 0
        for address in list(sweep.cursors):
            conn = sweep.conns.get(address)
            while address in sweep.cursors and spent < self.budget and conn is not None:
                try:
                    cursor, keys = conn.scan(
                        sweep.cursors[address], match=match, count=self.scan_count, _type="stream"
                    )
                except CONNECTION_ERRORS:
                    raise
                except ERRORS as exc:  # e.g. SCAN refused by ACL, or no TYPE option (< 6.0)
                    sweep.errors[address] = describe_error("SCAN TYPE stream", exc)
                    del sweep.cursors[address]
                    break
                spent += self.scan_count
                sweep.examined += self.scan_count
                for key in keys:
                    if key in sweep.found:
                        continue
                    if len(sweep.found) < self.max_streams:
                        sweep.found[bytes(key)] = address
                    else:
                        sweep.not_kept += 1
                if int(cursor) == 0:
                    del sweep.cursors[address]
                else:
                    sweep.cursors[address] = int(cursor)
            if conn is None:
                sweep.cursors.pop(address, None)

    def _snapshot(self, match: str, last: _Sweep | None, current: _Sweep | None) -> dict[str, Any]:
        found: dict[bytes, str] = {}
        for sweep in (last, current):  # the last full sweep, plus what the new one adds
            if sweep is not None:
                found.update(sweep.found)
        keep = dict(list(found.items())[: self.max_streams])
        newest = current if last is None else last
        not_kept = max((s.not_kept for s in (last, current) if s is not None), default=0)
        errors = {**(last.errors if last else {}), **(current.errors if current else {})}
        return {
            "streams": list(keep.items()),
            "match": match,
            "complete": last is not None,  # one sweep covered the whole keyspace
            "sweeping": current is not None,
            "capped": not_kept > 0 or len(found) > self.max_streams,
            "not_shown": not_kept + max(0, len(found) - self.max_streams),
            "examined": newest.examined if newest else 0,
            "swept_age_s": None if last is None else round(self._clock() - last.finished, 1),
            "errors": errors,
        }


# --- lag history ------------------------------------------------------------------------


class LagHistory:
    """Bounded rings of ``(unix time, lag, pending)`` per (stream, group), LRU over series."""

    def __init__(
        self,
        points: int = 120,
        max_series: int = 2000,
        min_interval_s: float = 0.9,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.points = points
        self.max_series = max_series
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._series: OrderedDict[tuple[str, str], deque[tuple[float, int | None, int]]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    def record(self, series: tuple[str, str], lag: int | None, pending: int) -> None:
        """Add a sample unless the last one is younger than ``min_interval_s``."""
        now = self._clock()
        with self._lock:
            ring = self._series.pop(series, None)
            if ring is None:
                ring = deque(maxlen=self.points)
            if not ring or now - ring[-1][0] >= self.min_interval_s:
                ring.append((now, lag, pending))
            self._series[series] = ring
            while len(self._series) > self.max_series:
                self._series.popitem(last=False)

    def samples(self, series: tuple[str, str]) -> list[tuple[float, int | None, int]]:
        with self._lock:
            return list(self._series.get(series, ()))

    def growing(self, series: tuple[str, str], window: int = GROWING_WINDOW) -> bool:
        """True when lag never fell over the last ``window`` samples and ended higher."""
        lags = [lag for _, lag, _ in self.samples(series)[-window:]]
        if len(lags) < window or any(lag is None for lag in lags):
            return False
        return all(a <= b for a, b in pairwise(lags)) and lags[-1] > lags[0]


# --- one stream, as the pages show it -------------------------------------------------------


def _consumer(c: Any, dead_ms: int) -> dict[str, Any]:
    out = asdict(c)
    idle_long = c.idle_ms >= dead_ms
    out["status"] = ("dead" if c.pending else "idle") if idle_long else "active"
    return out


def _group(
    g: GroupState, series: tuple[str, str], history: LagHistory, dead_ms: int
) -> dict[str, Any]:
    history.record(series, g.lag, g.pending)
    out = {k: v for k, v in asdict(g).items() if k != "consumer_list"}
    out["consumer_list"] = [_consumer(c, dead_ms) for c in g.consumer_list]
    out["dead_consumers"] = sum(c["status"] == "dead" for c in out["consumer_list"])
    out["lag_growing"] = history.growing(series)
    samples = history.samples(series)
    out["lag_history"] = [[round(t, 1), lag, pending] for t, lag, pending in samples]
    return out


def key_client(client: Any, key: bytes) -> Any:
    """The client to read one stream with: on a cluster, that of the primary holding it.

    stream_state also sends TIME, which a cluster client would send to every node.
    """
    if not is_cluster(client):
        return client
    return client.get_redis_connection(client.get_node_from_key(key))


def stream_summary(
    client: Any, key: bytes, *, node: str | None, history: LagHistory, dead_ms: int
) -> dict[str, Any] | None:
    """One stream with its groups; None when the key is gone; ``error`` when unreadable."""
    address = key_address(key)
    base: dict[str, Any] = {"key": display_key(key), "id": address, "node": node, "error": None}
    try:
        state = stream_state(client, key)
    except (*CONNECTION_ERRORS, DeadlineExceeded):  # the page as a whole cannot be read
        raise
    except StreamStateError as exc:
        refused = exc.__cause__ if isinstance(exc.__cause__, NoPermissionError) else None
        error = describe_error("the stream", refused) if refused else str(exc)
        return {**base, "error": error, "groups": []}
    except ERRORS as exc:
        return {**base, "error": describe_error("the stream", exc), "groups": []}
    if not state.exists:
        return None
    memory = attempt("MEMORY USAGE", client.memory_usage, key)
    removed = None if state.entries_added is None else state.entries_added - state.length
    fields = {k: v for k, v in asdict(state).items() if k not in ("groups", "stream", "exists")}
    groups = [_group(g, (address, g.name), history, dead_ms) for g in state.groups]
    return {
        **base,
        **fields,
        "memory_bytes": memory.get("data"),
        "memory_unavailable": None if memory["available"] else memory["reason"],
        "removed_entries": removed,
        "trimmed": None if removed is None else removed > 0,
        "groups": groups,
    }


def totals(streams: list[dict[str, Any]]) -> dict[str, Any]:
    """Headline numbers over the listed streams."""
    groups = [g for s in streams for g in s["groups"]]
    return {
        "streams": len(streams),
        "entries": sum(s.get("length") or 0 for s in streams),
        "groups": len(groups),
        "lag": sum(g["lag"] or 0 for g in groups),
        "pending": sum(g["pending"] for g in groups),
        "dead_consumers": sum(g["dead_consumers"] for g in groups),
        "growing": sum(g["lag_growing"] for g in groups),
    }


__all__ = [
    "ENTRY_ID",
    "FIELDS_SHOWN",
    "MAX_ID_PART",
    "MAX_WINDOW",
    "LagHistory",
    "StreamFinder",
    "check_id",
    "entries_window",
    "key_client",
    "pending_window",
    "raw_name",
    "stream_summary",
    "totals",
]
