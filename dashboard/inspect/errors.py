"""Errors and envelopes shared by every reader of a Redis.

Every read helper returns an *envelope*, ``{"available": True, "data": ...}`` or
``{"available": False, "reason": "CONFIG GET refused by ACL (NOPERM)"}``, instead of
raising for a refused or missing command. Only a server that cannot be reached at
all raises :class:`RedisUnavailable`; its message is safe to show (URLs masked).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import redis
from redis.exceptions import NoPermissionError, RedisClusterException, RedisError

from dashboard.connection import explain, mask_urls_in
from dashboard.deadline import NOT_ANSWERING

CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)
ERRORS = (RedisError, RedisClusterException, OSError)


class RedisUnavailable(RuntimeError):
    """The server could not be reached at all; the message is safe to show (no password)."""


def unavailable(reason: str) -> dict[str, Any]:
    """The marker a panel or field shows instead of data."""
    return {"available": False, "reason": reason}


def available(data: Any) -> dict[str, Any]:
    return {"available": True, "data": data}


def describe_error(what: str, exc: BaseException) -> str:
    """One human line for a failed command, with any URL masked."""
    message = mask_urls_in(str(exc)).strip() or type(exc).__name__
    if isinstance(exc, NoPermissionError) or message.upper().startswith("NOPERM"):
        return _acl_refusal(what, message)
    lowered = message.lower()
    if "unknown command" in lowered or "unknown subcommand" in lowered:
        return f"{what} is not supported by this server (unknown command)"
    if isinstance(exc, redis.AuthenticationError):
        return f"{what} failed: authentication failed ({message})"
    if isinstance(exc, redis.BusyLoadingError):
        return f"{what} failed: the server is loading its dataset"
    if isinstance(exc, CONNECTION_ERRORS):
        said = explain(exc)
        if said.startswith(NOT_ANSWERING):
            return f"{what} failed: {said}"
        return f"{what} failed: server unreachable ({said})"
    return f"{what} failed: {message}"


_REFUSED_COMMAND = re.compile(r"permissions to run the '([^']+)' command", re.IGNORECASE)
_REFUSED_TARGET = re.compile(r"permissions to access (?:one of )?(?:the |a )?(key|channel)", re.I)


def _acl_refusal(what: str, message: str) -> str:
    """Name what the ACL refused: a page that reads with several commands (XINFO, then
    TIME) must not blame the one the user is allowed to run."""
    command = _REFUSED_COMMAND.search(message)
    if command:
        refused = command.group(1).replace("|", " ").upper()
        if what.upper().startswith(refused):  # "INFO memory" refused as "info"
            return f"{what} refused by ACL (NOPERM)"
        allow = command.group(1).lower()
        return f"{refused} refused by ACL (NOPERM) while reading {what}; allow it with +{allow}"
    target = _REFUSED_TARGET.search(message)
    if target:
        return f"{what} refused by ACL (NOPERM): no permission for this {target.group(1).lower()}"
    return f"{what} refused by ACL (NOPERM)"


def unreachable(exc: BaseException) -> RedisUnavailable:
    """The error for a server that cannot be reached at all (message safe to show)."""
    reason = describe_error("connection", exc).removeprefix("connection failed: ")
    if reason.startswith(NOT_ANSWERING):
        return RedisUnavailable(reason)
    return RedisUnavailable(f"Redis is unavailable: {reason}")


def attempt(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run ``fn`` and wrap its result (or the reason it failed) in an envelope."""
    try:
        return available(fn(*args, **kwargs))
    except ERRORS as exc:
        return unavailable(describe_error(what, exc))
    except (ValueError, TypeError, KeyError) as exc:  # a server answering in an odd shape
        return unavailable(f"{what} gave a reply the dashboard cannot read ({exc!r:.200})")


def text(value: Any) -> Any:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
