"""The playground's cards: what each shows, its buttons, and where its effect appears
in the dashboard (the links are plain paths of the views, with their query params)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from dashboard.demo import antipatterns
from dashboard.demo.shop import ORDER_GROUP
from dashboard.demo.target import DemoTarget
from dashboard.keyid import key_address


@dataclass(frozen=True)
class CardSpec:
    id: str
    title: str
    pattern: str  # the module of the layer it shows
    what: str
    actions: tuple[tuple[str, str], ...]  # (action, button label)


CARDS: tuple[CardSpec, ...] = (
    CardSpec("ratelimit", "Rate limit: a burst", "dashboard.patterns.ratelimit",
             "One client fires 150 requests at a limit of 100 per window. The limiter decides "
             "each in one Lua call on the server's clock; denied requests cost nothing.",
             (("burst", "Burst 150 requests"),)),
    CardSpec("locks", "Lock: two workers race", "dashboard.patterns.locks",
             "Two payment workers want the same account. One wins; the other waits. Every "
             "acquisition gets a fencing token that only grows, so a holder whose lease ran out "
             "cannot write after the next one.",
             (("race", "Race two workers"), ("expire", "Pause the holder past its lease"))),
    CardSpec("streams", "Stream: kill a consumer", "dashboard.patterns.streams",
             "Orders go through a consumer group of three workers. Kill one: what it took stays "
             "pending under its name, then the survivors reclaim it (XAUTOCLAIM).",
             (("kill", "Kill worker-2"), ("revive", "Revive worker-2"),
              ("orders", "Add 30 orders"))),
    CardSpec("stampede", "Cache stampede", "dashboard.patterns.cache",
             "50 callers miss the same key at once. Without protection each recomputes it; "
             "with the layer's recompute lock one does and the others wait for its value.",
             (("unprotected", "50 misses, no protection"), ("protected", "50 misses, protected"))),
    CardSpec("cache", "Cache-aside", "dashboard.patterns.cache",
             "Product pages read through the cache: a miss loads from the database once and "
             "stores with a jittered TTL; a tag invalidates the whole catalog in one write.",
             (("read", "Read product 1"), ("invalidate", "Invalidate the catalog tag"))),
    CardSpec("pubsub", "Pub/Sub: publish", "dashboard.patterns.pubsub",
             "Publish a notification. Pub/sub is at-most-once: only subscribers connected now "
             "get it. Open the live tail to watch the channel.",
             (("publish", "Publish"),)),
    CardSpec("sessions", "Sessions", "dashboard.patterns.sessions",
             "A login is one hash with a sliding TTL (renewed by every read in the same round "
             "trip) and an entry in the user's index of sessions.",
             (("login", "Log in"), ("read", "Read (renews TTL)"), ("logout", "Log out"))),
    CardSpec("leaderboard", "Leaderboard: best sellers", "dashboard.patterns.leaderboard",
             "Each sale adds to a product's score in today's sorted set (which expires on its "
             "own); the top is one bounded ZREVRANGE.",
             (("sell", "Record 20 sales"),)),
    CardSpec("hll", "Unique visitors (HyperLogLog)", "dashboard.patterns.counters",
             "Count 10,000 distinct visitors in about 12 KB with a 0.81% standard error.",
             (("count", "Count 10,000 visitors"),)),
    CardSpec("antipatterns", "Anti-patterns and the audit", "dashboard.inspect.audit",
             "Plant one mistake, and the audit (/audit) reports it with the fix.",
             tuple((p.id, p.label) for p in antipatterns.PLANTS)),
)  # fmt: skip
BY_ID = {c.id: c for c in CARDS}


def href(path: str, **params: Any) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{path}?{query}" if query else path


def key_href(key: str | bytes) -> str:
    raw = key.encode("utf-8") if isinstance(key, str) else key
    return href("/key", k=key_address(raw))


def plant_view(target: DemoTarget, p: antipatterns.Plant) -> dict[str, Any]:
    why = None
    if p.server_wide and not target.owned:
        why = "acts on the whole server: only on the demo's own server"
    elif p.needs and p.needs in target.missing:
        why = f"fakeredis has no {p.needs}: the audit cannot see it here"
    return {
        "id": p.id,
        "label": p.label,
        "rule": p.rule,
        "what": p.what,
        "available": why is None or p.needs == "INFO",
        "why_not": why,
    }


def links(target: DemoTarget, card_id: str, result: dict[str, Any]) -> list[dict[str, str]]:
    """Where the card's effect shows in the dashboard."""
    t = target
    out: list[tuple[str, str]] = []
    if card_id == "ratelimit":
        out.append(
            ("/ratelimits", href("/ratelimits", q=result.get("identity") or t.limiter("burst")))
        )
    elif card_id == "locks":
        out.append(("/locks", href("/locks", q=t.name("payment", "playground"))))
    elif card_id == "streams":
        stream = t.name("shop", "orders")
        out.append(
            (
                "stream detail",
                href("/stream", k=key_address(stream.encode()), group=ORDER_GROUP),
            )
        )
        out.append(("/streams", href("/streams", match=t.name("shop", "*"))))
    elif card_id == "pubsub":
        channel = result.get("channel") or t.name("shop", "notifications", "playground")
        out.append(("live tail", href("/pubsub", channel=channel)))
        out.append(("/pubsub", href("/pubsub", match=t.name("shop", "notifications", "*"))))
    elif card_id == "antipatterns":
        out.append(("/audit", "/audit"))
    else:
        out.append(("/keyspace", "/keyspace"))
    if result.get("key"):
        out.append(("key detail", key_href(result["key"])))
    return [{"label": label, "href": url} for label, url in out]
