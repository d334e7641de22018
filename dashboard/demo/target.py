"""Where the demo writes, and what it may do there.

Three kinds of target:

* ``redis-server``: a private server the demo started (temp dir, free port, no
  persistence). The demo owns it: server-wide anti-patterns (KEYS, FLUSHDB on a
  spare db, CONFIG SET) may be planted there.
* ``fakeredis``: the in-process stand-in used when redis-server is not installed.
  Owned too, but it has no INFO, MEMORY, OBJECT, CONFIG or SLOWLOG, so panels and
  audit rules that need them say "unavailable".
* ``external``: a Redis given with ``--url``. The demo writes there only with
  writes enabled, and only under names that say ``demo``: keys under ``demo:`` and,
  for the two layouts whose prefix the dashboard recognises them by, limiter names
  ``demo.*`` (``ratelimit:demo.*``) and lock resources ``demo:*`` (``lock:{demo:*}``).
  Anything that acts on the whole server is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis

from dashboard import gate
from dashboard.connection import ConnectionOptions, connect, mask_url

KINDS = ("redis-server", "fakeredis", "external")
FAKEREDIS_MISSING = ("INFO", "MEMORY", "OBJECT", "CONFIG", "SLOWLOG")
EXTERNAL_PREFIX = "demo:"


class DemoRefused(PermissionError):
    """The demo will not do this here; the message says why and what would allow it."""


@dataclass(frozen=True)
class DemoTarget:
    url: str
    kind: str = "redis-server"
    writes: bool = True
    pid: int | None = None  # of the private redis-server
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown demo target kind {self.kind!r}; use one of {KINDS}")

    @property
    def owned(self) -> bool:
        """True for a server the demo started (and may change as a whole)."""
        return self.kind != "external"

    @property
    def prefix(self) -> str:
        return "" if self.owned else EXTERNAL_PREFIX

    @property
    def missing(self) -> tuple[str, ...]:
        """Commands the backend lacks (panels that need them say so)."""
        return FAKEREDIS_MISSING if self.kind == "fakeredis" else ()

    def name(self, *parts: str) -> str:
        """A key, prefix or channel name the demo may write (``demo:`` on an external)."""
        return self.prefix + ":".join(parts)

    def limiter(self, name: str) -> str:
        """A rate limiter name (``demo.`` on an external: limiter names allow no ``:``)."""
        return name if self.owned else f"demo.{name}"

    def match_patterns(self) -> list[str]:
        """SCAN globs covering every key the demo writes (for clean-up)."""
        if self.owned:
            return ["*"]
        return [EXTERNAL_PREFIX + "*", "ratelimit:demo.*", "lock:{demo:*"]

    @property
    def label(self) -> str:
        if self.kind == "redis-server":
            pid = f", pid {self.pid}" if self.pid else ""
            return f"private redis-server{pid} at {mask_url(self.url)}"
        if self.kind == "fakeredis":
            return f"fakeredis in-process stand-in at {mask_url(self.url)} (redis-server not found)"
        return f"external Redis {mask_url(self.url)} (demo data under {EXTERNAL_PREFIX})"

    def check_writes(self, what: str) -> None:
        if not self.writes:
            raise DemoRefused(
                f"read-only mode: cannot {what}. The playground writes demo data (under "
                f"{EXTERNAL_PREFIX} on this Redis) only when the dashboard runs with "
                "--allow-writes; or run `redis-dashboard demo` for a private server."
            )

    def check_owned(self, what: str) -> None:
        """Refuse server-wide actions on a Redis the demo does not own."""
        if not self.owned:
            raise DemoRefused(
                f"refused: {what} acts on the whole server, and this Redis is not the demo's "
                "own; run `redis-dashboard demo` (a private server) to try it"
            )

    def client(self, *, db: int | None = None, pool_size: int = 64, **kwargs: Any) -> Any:
        """A writer client of the demo's own (the dashboard's gated client stays read-only)."""
        options = ConnectionOptions(
            pool_size=pool_size, socket_timeout=10.0, client_name="redis-dashboard-demo"
        )
        client = connect(self.url, options)
        if not self.owned:  # someone else's Redis: still never KEYS, FLUSH*, CONFIG SET...
            client = gate.install(client, allow_writes=self.writes)
        if db is None:
            return client
        pool = client.connection_pool  # the same server and credentials, another db
        other = redis.ConnectionPool(
            connection_class=pool.connection_class,
            max_connections=pool_size,
            **{**pool.connection_kwargs, **kwargs, "db": db},
        )
        client.close()
        return redis.Redis(connection_pool=other)

    def public(self) -> dict[str, Any]:
        """Plain data for the page and its JSON twin."""
        return {
            "kind": self.kind,
            "label": self.label,
            "url": mask_url(self.url),
            "owned": self.owned,
            "writes": self.writes,
            "prefix": self.prefix,
            "missing": list(self.missing),
            "notes": list(self.notes),
        }
