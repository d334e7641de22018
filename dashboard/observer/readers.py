"""The readers behind the observer's live sections: each asks Redis once and returns
plain data; the views shape it per request without another Redis call.

A reader keeps what must live between refreshes (a rolling key search, a stream
finder's cursors, the lag history) in a small holder object the observer owns, so
that state is per target and survives as long as the observer.

:data:`KINDS` is the table of section kinds: what each reads, how often, whether it
takes a parameter (a match glob) and whether it is sampled while nobody watches. A
new kind of reading is one :class:`Kind` added with :func:`register`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dashboard.connection import is_cluster
from dashboard.inspect.errors import (
    CONNECTION_ERRORS,
    ERRORS,
    available,
    describe_error,
    unavailable,
)
from dashboard.inspect.live.detectors import LOCK, RATELIMIT, Detectors
from dashboard.inspect.live.state import KeySearch, read_live
from dashboard.inspect.live.streamread import read_streams
from dashboard.inspect.live.streams import LagHistory, StreamFinder
from dashboard.inspect.nodes import node_clients
from dashboard.inspect.server.clients import read_clients
from dashboard.inspect.server.overview import server_overview
from dashboard.inspect.server.tables import rates_for, read_commands, read_info, read_slowlog
from dashboard.keyid import display_key
from dashboard.patterns.pubsub import channels_state

CHANNEL_LIMIT = 1000  # channels listed per node (PUBSUB CHANNELS is not paged)


def read_overview(client: Any) -> dict[str, Any]:
    """The overview's facts (INFO, CONFIG GET save, CLUSTER INFO); see docs/overview.md."""
    return server_overview(client)


def _overview(observer: Any, _param: str | None) -> dict[str, Any]:
    """The overview, following the cluster's shape: a primary that does not answer at
    all (the overview still reads the others) makes the observer re-read the node map,
    and when the primaries changed the overview is read again on the new map."""
    data = read_overview(observer.client)
    down = [
        n["address"] for n in data.get("nodes", ()) if n["role"] == "primary" and not n["reachable"]
    ]
    if down and observer.refresh_topology(f"primary {', '.join(down)} did not answer"):
        data = read_overview(observer.client)
    return data


@dataclass
class LiveKeys:
    """Per-kind key searches (rate limits, locks) that continue across refreshes."""

    settings: Any
    searches: dict[str, KeySearch] = field(default_factory=dict)

    def search(self, kind: str) -> KeySearch:
        return self.searches.setdefault(kind, KeySearch())

    def read(self, client: Any, kind: str) -> dict[str, Any]:
        detectors = Detectors.from_settings(self.settings)
        return read_live(client, self.settings, self.search(kind), detectors, kind)

    def expire(self, kind: str) -> None:
        self.search(kind).expire()


LIVE_KEY_KINDS = {"ratelimits": RATELIMIT, "locks": LOCK}


@dataclass
class StreamWatch:
    """Stream discovery (per match glob) and the lag history every refresh samples."""

    client: Any
    settings: Any
    history: LagHistory = field(default_factory=LagHistory)
    finder: StreamFinder | None = None

    def __post_init__(self) -> None:
        s = self.settings
        self.finder = StreamFinder(
            self.client,
            max_streams=s.max_streams,
            scan_count=s.scan_count,
            budget=s.stream_scan_keys,
        )

    def read(self, match: str) -> dict[str, Any]:
        assert self.finder is not None
        found = self.finder.find(match)
        dead_ms = self.settings.consumer_dead_ms
        streams = read_streams(
            self.client, found["streams"], history=self.history, dead_ms=dead_ms
        )  # pipelined: two round trips per node and batch (inspect/live/streamread.py)
        streams.sort(key=lambda s: s["key"])
        discovery = {k: v for k, v in found.items() if k != "streams"}
        return {
            "match": match,
            "cluster": is_cluster(self.client),
            "discovery": discovery,
            "streams": streams,
        }

    def expire(self) -> None:
        if self.finder is not None:
            self.finder.expire()


def _shard_listing(conn: Any, match: str) -> dict[str, Any]:
    names = sorted(conn.pubsub_shardchannels(match))
    shown = names[:CHANNEL_LIMIT]
    counts = conn.pubsub_shardnumsub(*shown) if shown else []
    return {
        "channels": [(display_key(bytes(n)), int(c)) for n, c in counts],
        "channel_count": len(names),
        "truncated": len(names) > CHANNEL_LIMIT,
        "pattern_subscriptions": 0,
    }


def _listing(conn: Any, match: str) -> dict[str, Any]:
    got = channels_state(conn, match, CHANNEL_LIMIT)
    return {
        "channels": [(c.name, c.subscribers) for c in got.channels],
        "channel_count": got.channel_count,
        "truncated": got.truncated,
        "pattern_subscriptions": got.pattern_subscriptions,
    }


def _merged(client: Any, what: str, read: Any, match: str) -> dict[str, Any]:
    """``read`` on every node, merged. A node knows only its own clients'
    subscriptions (replicas too: cluster clients subscribe there), so on a cluster
    the channels are the union and the counts sums."""
    results, lost = [], []
    for _, _, conn in node_clients(client, replicas=True):
        try:
            results.append(available(read(conn, match)))
        except CONNECTION_ERRORS as exc:  # unreachable, not "no channels"
            lost.append(exc)
            results.append(unavailable(describe_error(what, exc)))
        except ERRORS as exc:
            results.append(unavailable(describe_error(what, exc)))
    if lost and len(lost) == len(results):
        raise lost[0]
    ok = [r["data"] for r in results if r["available"]]
    if not ok:
        return unavailable("; ".join(sorted({r["reason"] for r in results})))
    counts: dict[str, int] = {}
    for part in ok:
        for name, subscribers in part["channels"]:
            counts[name] = counts.get(name, 0) + subscribers
    truncated = any(part["truncated"] for part in ok)
    return available(
        {
            "channels": [
                {"name": n, "subscribers": c}
                for n, c in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
            ],
            "channel_count": max(p["channel_count"] for p in ok) if truncated else len(counts),
            "truncated": truncated,
            "pattern_subscriptions": sum(p["pattern_subscriptions"] for p in ok),
            "partial": [r["reason"] for r in results if not r["available"]],
        }
    )


def read_pubsub(client: Any, match: str) -> dict[str, Any]:
    """Active channels (PUBSUB CHANNELS/NUMSUB/NUMPAT) and shard channels, every primary."""
    listing = _merged(client, "PUBSUB CHANNELS", _listing, match)
    data: dict[str, Any] = {"match": match, "cluster": is_cluster(client)}
    if listing["available"]:
        found = listing["data"]
        partial = found.pop("partial")
        data.update(found, channels_unavailable="; ".join(partial) or None)
    else:
        data.update(
            channels=[],
            channel_count=None,
            truncated=False,
            pattern_subscriptions=None,
            channels_unavailable=listing["reason"],
        )
    shard = _merged(client, "PUBSUB SHARDCHANNELS", _shard_listing, match)
    if shard["available"]:
        for name in ("pattern_subscriptions", "partial"):
            shard["data"].pop(name)
    data["shard_channels"] = shard
    return data


# --- the table of section kinds ---------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """One kind of reading.

    ``read(observer, param)`` asks Redis and returns plain data; ``period(settings)`` is
    the cadence while watched; ``idle_period(settings)`` (None: not read while nobody
    watches) keeps it sampled for history; ``expire(observer)`` forgets cached discovery
    state before an explicit refresh; ``parameterized`` kinds take a match glob.
    """

    name: str
    read: Any
    period: Any
    parameterized: bool = False
    idle_period: Any = None
    expire: Any = None


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Add (or replace) a kind of section."""
    KINDS[kind.name] = kind
    return kind


def _live(settings: Any) -> float:
    return settings.live_refresh_s


def _sampled(settings: Any) -> float | None:
    """Sampled for history while nobody watches, unless history is off (docs/history.md)."""
    return None if getattr(settings, "no_state", True) else settings.history_interval


register(
    Kind(
        "overview",
        _overview,
        lambda s: s.server_refresh_s,
        idle_period=_sampled,
    )
)
for _name, _kind in LIVE_KEY_KINDS.items():
    register(
        Kind(
            _name,
            lambda o, _p, k=_kind: o.live_keys.read(o.client, k),
            _live,
            idle_period=_sampled,
            expire=lambda o, k=_kind: o.live_keys.expire(k),
        )
    )
register(
    Kind(
        "streams",
        lambda o, p: o.stream_watch.read(p or "*"),
        _live,
        parameterized=True,
        idle_period=_sampled,
        expire=lambda o: o.stream_watch.expire(),
    )
)
register(Kind("pubsub", lambda o, p: read_pubsub(o.client, p or "*"), _live, parameterized=True))

# The server's own tables (docs/server.md): read while their page or twin is watched.
register(Kind("slowlog", lambda o, _p: read_slowlog(o.client), lambda s: s.server_refresh_s))
register(Kind("clients", lambda o, _p: read_clients(o.client), lambda s: s.server_refresh_s))
register(
    Kind(
        "commands",
        lambda o, _p: read_commands(o.client, rates_for(o)),
        lambda s: s.server_refresh_s,
    )
)
register(Kind("info", lambda o, _p: read_info(o.client), lambda s: s.server_refresh_s))
