"""Logical databases: which exist (INFO keyspace), and a client for another one.

The observer watches the database in the target's URL. The key browser and key
detail can look into another one on demand (``?db=3``): :func:`db_url` makes the
URL of the same server with another database, so the client comes from the same
factory (and passes the same command gate) as the target's own.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from dashboard.connection import ConnectionConfigError, is_cluster

_DB_LINE = re.compile(r"db(\d+)")
MAX_DB = 1 << 16  # Redis' databases setting is an int; nobody configures more than this


def current_db(client: Any) -> int:
    """The database a standalone or Sentinel client is on (a cluster has only db 0)."""
    if is_cluster(client):
        return 0
    return int(client.connection_pool.connection_kwargs.get("db") or 0)


def db_url(url: str, db: int) -> str:
    """``url`` pointing at database ``db`` of the same server.

    ``redis://h:p/0`` -> ``redis://h:p/3``; ``unix:///s.sock?db=0`` -> ``...?db=3``;
    ``redis+sentinel://h:26379/svc`` -> ``.../svc/3``. A cluster has only database 0.
    """
    if not 0 <= db < MAX_DB:
        raise ValueError(f"db must be between 0 and {MAX_DB - 1}, got {db}")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme.endswith("+cluster"):
        if db:
            raise ValueError("a Redis Cluster has only database 0")
        return url
    if scheme == "unix":
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "db"]
        return urlunsplit(parts._replace(query=urlencode([*query, ("db", str(db))])))
    if scheme.endswith("+sentinel"):
        segments = [p for p in parts.path.split("/") if p]
        if not segments:
            raise ConnectionConfigError("sentinel URL needs a service name")
        return urlunsplit(parts._replace(path=f"/{segments[0]}/{db}"))
    return urlunsplit(parts._replace(path=f"/{db}"))


def databases(keyspace: dict[str, Any], configured: int | None, current: int) -> list[dict]:
    """Every database worth offering: those INFO keyspace lists (they hold keys), the
    current one, and (when CONFIG GET databases answered) how many exist in all."""
    rows: dict[int, dict[str, Any]] = {}
    for name, value in keyspace.items():
        match = _DB_LINE.fullmatch(str(name))
        if match and isinstance(value, dict):
            db = int(match.group(1))
            rows[db] = {
                "db": db,
                "keys": int(value.get("keys", 0)),
                "expires": int(value.get("expires", 0)),
                "avg_ttl_ms": int(value.get("avg_ttl", 0)),
            }
    rows.setdefault(current, {"db": current, "keys": 0, "expires": 0, "avg_ttl_ms": 0})
    out = sorted(rows.values(), key=lambda r: r["db"])
    for row in out:
        row["current"] = row["db"] == current
        row["within_config"] = configured is None or row["db"] < configured
    return out
