"""Test helpers for pages served from the observer's picture.

A page shows what the observer last read (up to a cadence old); a test that changes
Redis and then looks must ask for a reading made after its change, as an explicit
refresh does. These helpers do that, then request the page.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

SECTIONS = {"ratelimits", "locks", "streams", "pubsub", "overview"}


def observer_of(client_or_app):
    app = getattr(client_or_app, "application", client_or_app)
    return app.extensions["redis_dashboard"].observer


def refresh(client_or_app, path: str) -> None:
    """Make the observer re-read the section behind ``path`` and wait for it."""
    parts = urlsplit(path)
    kind = parts.path.strip("/").split("/")[0].removesuffix(".json") or "overview"
    if kind not in SECTIONS:
        raise ValueError(f"{path} is not served from a live section")
    param = None
    if kind in ("streams", "pubsub"):
        param = parse_qs(parts.query).get("match", ["*"])[0] or "*"
    observer_of(client_or_app).refresh(kind, param)


def fresh_get(client, path: str, **kwargs):
    """GET ``path`` after a reading made now (see the module docstring)."""
    refresh(client, path)
    return client.get(path, **kwargs)


def wait_scan(client, timeout: float = 30.0) -> dict:
    """Wait until no keyspace scan runs, then return /keyspace.json."""
    assert observer_of(client).keyspace.wait(timeout), "the keyspace scan did not finish"
    return client.get("/keyspace.json").get_json()
