"""Write actions on one key: delete it (UNLINK), set its TTL, remove its TTL (PERSIST).

Two steps, like every action of the dashboard. :func:`prepare` reads the key as it
is now and returns a confirmation code bound to the action and to what was seen
(the key's type); :func:`perform` acts only when the key still is what the user
confirmed, so a key deleted and re-created as something else in between is left
alone. The web layer refuses both steps in read-only mode; the gated client would
refuse the write anyway.

UNLINK, not DEL: the value is freed in a background thread, so deleting a
million-element hash does not stall the server.
"""

from __future__ import annotations

from typing import Any

from dashboard.inspect.live.actions import ActionError, fingerprint
from dashboard.keyid import display_key, redis_cli_arg

ACTIONS = {
    "delete": "UNLINK",
    "expire": "EXPIRE",
    "persist": "PERSIST",
}
MAX_TTL_S = 10 * 365 * 86_400  # ten years: anything longer is a typo for "no TTL"


def check_ttl(value: Any) -> int:
    """A TTL in whole seconds, 1 .. ten years; ``ValueError`` with a reason otherwise."""
    try:
        ttl = int(str(value).strip())
    except ValueError:
        raise ValueError(
            f"ttl must be a whole number of seconds, got {str(value)[:40]!r}"
        ) from None
    if not 1 <= ttl <= MAX_TTL_S:
        raise ValueError(f"ttl must be between 1 and {MAX_TTL_S:,} seconds, got {ttl:,}")
    return ttl


def _seen(client: Any, key: bytes) -> tuple[str, int]:
    pipe = client.pipeline(transaction=False)
    pipe.type(key).pttl(key)
    kind, pttl = pipe.execute()
    kind = kind.decode() if isinstance(kind, bytes) else str(kind)
    if kind == "none":
        raise ActionError(404, f"key {display_key(key)} does not exist (any more)")
    return kind, int(pttl)


def describe(action: str, key: bytes, kind: str, ttl_s: int | None) -> str:
    """What the action will do, in words (the confirmation page and the write log)."""
    shown = display_key(key)
    if action == "delete":
        return f"delete {kind} key {shown} (UNLINK: the value is freed in the background)"
    if action == "expire":
        return f"set the TTL of {kind} key {shown} to {ttl_s:,} s (EXPIRE)"
    return f"remove the TTL of {kind} key {shown}: it will never expire (PERSIST)"


def _code(action: str, key: bytes, kind: str, ttl_s: int | None) -> str:
    return fingerprint(action.encode(), key, kind.encode(), str(ttl_s or "").encode())


def prepare(client: Any, key: bytes, action: str, ttl_s: int | None = None) -> dict[str, Any]:
    """What ``action`` would change on ``key`` now, and the code that confirms it."""
    if action not in ACTIONS:
        raise ActionError(400, f"action must be one of {', '.join(ACTIONS)}")
    if action == "expire" and ttl_s is None:
        raise ActionError(400, "set a TTL: how many seconds?")
    kind, pttl = _seen(client, key)
    if action == "persist" and pttl < 0:
        raise ActionError(409, f"key {display_key(key)} has no TTL to remove")
    return {
        "action": action,
        "command": ACTIONS[action],
        "key": display_key(key),
        "cli": redis_cli_arg(key),
        "type": kind,
        "ttl_ms": pttl if pttl >= 0 else None,
        "new_ttl_s": ttl_s if action == "expire" else None,
        "summary": describe(action, key, kind, ttl_s),
        "confirm": _code(action, key, kind, ttl_s),
    }


def perform(
    client: Any, key: bytes, action: str, confirm: str, ttl_s: int | None = None
) -> dict[str, Any]:
    """Do ``action`` if the key is still what was confirmed; what happened."""
    if action not in ACTIONS:
        raise ActionError(400, f"action must be one of {', '.join(ACTIONS)}")
    kind, _pttl = _seen(client, key)
    if _code(action, key, kind, ttl_s) != confirm:
        raise ActionError(
            409, f"key {display_key(key)} changed since you confirmed (or the form was edited)"
        )
    if action == "delete":
        done = int(client.unlink(key))
    elif action == "expire":
        done = int(client.expire(key, ttl_s))
    else:
        done = int(client.persist(key))
    if not done:
        raise ActionError(409, f"key {display_key(key)} changed meanwhile: nothing was done")
    return {
        "done": True,
        "action": action,
        "key": display_key(key),
        "message": "done: " + describe(action, key, kind, ttl_s),
    }
