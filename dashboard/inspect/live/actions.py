"""The live views' two write actions: force-release a lock, reset one limiter identity.

Both take two steps. ``prepare_*`` reads what is there now and returns a confirmation
code bound to it (the lock's current holder token; the limiter key); ``release_lock``
and ``reset_limiter`` act only when the code still matches. So confirming releases the
lock the user SAW: if it changed hands in between, nothing is released. Only keys a
detector recognises can be acted on: this is not a generic DEL endpoint.

The caller decides whether writes are allowed (the web layer refuses before calling
anything in read-only mode); the gated client would refuse the writes anyway.
"""

from __future__ import annotations

import hashlib
from typing import Any

from dashboard.inspect.live import ownership
from dashboard.inspect.live.detectors import LOCK, RATELIMIT, Claim, Detectors
from dashboard.inspect.live.foreign import lock_layout
from dashboard.keyid import display_key
from dashboard.patterns.locks import info_key, parse_lock_key, short_token
from dashboard.patterns.scripts import load

MAX_TOKEN_BYTES = 4096  # longer values are not lock tokens: refuse rather than read them
_COMPARE_AND_DELETE = load("compare_and_delete")
_LOCK_RELEASE = load("lock_release")


class ActionError(Exception):
    """An action that cannot be done; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def fingerprint(*parts: bytes) -> str:
    """A short code for what the user confirmed (not a secret: CSRF protects the POST)."""
    return hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]


def _claim(detectors: Detectors, kind: str, key: bytes) -> Claim:
    claim = detectors.claim(kind, key)
    what = "lock" if kind == LOCK else "rate limiter"
    if claim is None:
        raise ActionError(404, f"{display_key(key)} is not a {what} key the dashboard knows")
    return claim


def _lock_claim(client: Any, detectors: Detectors, key: bytes) -> tuple[Claim, bool]:
    """The lock claim for ``key`` and whether our layer wrote it (from the evidence in
    Redis, live/ownership.py; a name alone does not make a lock ours)."""
    claim = _claim(detectors, LOCK, key)
    ours, others = ownership.resolve(client, [claim])
    if not ours:
        claim = next((c for c in others if c.key == key), claim)
    if claim.key != key:
        raise ActionError(404, f"{display_key(key)} is a lock's companion, not the lock")
    return claim, bool(ours)


def _token(client: Any, key: bytes) -> bytes:
    """The lock's current token; ActionError when it is not held or not a lock."""
    pipe = client.pipeline(transaction=False)
    pipe.type(key).strlen(key)
    kind, length = pipe.execute()
    kind = kind.decode() if isinstance(kind, bytes) else str(kind)
    if kind == "none":
        raise ActionError(404, f"lock {display_key(key)} is not held (any more)")
    if kind != "string" or length > MAX_TOKEN_BYTES:
        raise ActionError(409, f"{display_key(key)} holds no lock token ({kind}, {length} bytes)")
    return client.getrange(key, 0, MAX_TOKEN_BYTES - 1)


def prepare_release(client: Any, detectors: Detectors, key: bytes) -> dict[str, Any]:
    """What a force-release would release, and the code that confirms it."""
    claim, ours = _lock_claim(client, detectors, key)
    token = _token(client, key)
    return {
        "key": display_key(key),
        "resource": claim.subject,
        "layout": "dashboard" if ours else lock_layout(claim, key, token),
        "holder": short_token(token),
        "ttl_remaining_ms": client.pttl(key),
        "confirm": fingerprint(key, token),
    }


def release_lock(client: Any, detectors: Detectors, key: bytes, confirm: str) -> dict[str, Any]:
    """Delete the lock if its holder is still the one confirmed."""
    _, ours = _lock_claim(client, detectors, key)
    token = _token(client, key)
    shown = display_key(key)
    if fingerprint(key, token) != confirm:
        raise ActionError(409, f"lock {shown} changed hands since you confirmed: not released")
    resource = parse_lock_key(key) if ours else None
    if resource is not None:  # our layer: its release script also ends the holder's stats
        done = _LOCK_RELEASE(client, keys=[key, info_key(resource)], args=[token])
    else:
        done = _COMPARE_AND_DELETE(client, keys=[key], args=[token])
    if done != 1:
        raise ActionError(409, f"lock {shown} changed hands while releasing: not released")
    return {
        "released": True,
        "key": shown,
        "message": f"released lock {shown} (holder {short_token(token)})",
    }


def prepare_reset(client: Any, detectors: Detectors, key: bytes) -> dict[str, Any]:
    """What a reset would delete, and the code that confirms it."""
    claim = _claim(detectors, RATELIMIT, key)
    if not client.exists(claim.key):
        raise ActionError(404, f"limiter key {display_key(claim.key)} does not exist (any more)")
    return {
        "key": display_key(claim.key),
        "limiter": claim.group,
        "identity": claim.subject,
        "layout": claim.layout,
        "keys": [display_key(k) for k in (claim.key, *claim.companions)],
        "confirm": fingerprint(claim.key),
    }


def reset_limiter(client: Any, detectors: Detectors, key: bytes, confirm: str) -> dict[str, Any]:
    """Delete one identity's limiter state: it has its full budget again."""
    claim = _claim(detectors, RATELIMIT, key)
    shown = display_key(claim.key)
    if fingerprint(claim.key) != confirm:
        raise ActionError(400, f"the confirmation does not match limiter key {shown}")
    deleted = client.delete(claim.key, *claim.companions)  # companions share the hash tag
    return {
        "reset": True,
        "key": shown,
        "deleted": int(deleted),
        "message": f"reset {claim.subject} under {claim.group}: {deleted} key(s) deleted",
    }
