"""Key detail: metadata and a bounded, paged preview of one key of any type.

The dashboard opens keys it *found*, so nothing here may assume a key is small:
every read is bounded, and so is a whole page (:mod:`.preview` reads one page of a
value within a read budget and a display budget). There is no HGETALL, SMEMBERS,
``LRANGE 0 -1`` or ``XRANGE - +`` without COUNT on this path.

Metadata comes first and with NOTOUCH commands (TYPE, PTTL, OBJECT, MEMORY USAGE),
so the idle time shown is the key's, not the effect of the dashboard reading it.
Commands the server refuses or lacks (ACL, managed services, fakeredis) leave that
field ``None`` with the reason in ``unavailable``; only an unreachable server raises
:class:`~dashboard.inspect.errors.RedisUnavailable`. Values are returned as escaped
plain text, never markup: templates escape them. Fields: docs/keydetail.md.
"""

from __future__ import annotations

from typing import Any

from dashboard.deadline import DeadlineExceeded
from dashboard.inspect.errors import (
    CONNECTION_ERRORS,
    ERRORS,
    attempt,
    describe_error,
    unreachable,
)
from dashboard.inspect.keyspace.preview import collection_page, hll_page, string_page
from dashboard.inspect.live.streamwindows import check_id
from dashboard.keyid import display_key, key_address
from dashboard.pool import PoolExhausted

MAX_PAGE = 1000
MAX_STRING_BYTES = 1024 * 1024
MAX_ELEMENT_BYTES = 64 * 1024  # shown per element; a page holds at most MAX_PAGE of them
KEY_DISPLAY_BYTES = 1024
_KNOWN_TYPES = {"string", "hash", "set", "zset", "list", "stream"}


def _clamp(value: int, low: int, high: int, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an integer, got {value!r}") from exc
    return max(low, min(number, high))


def _scan_cursor(cursor: str | int | None) -> int:
    if cursor in (None, ""):
        return 0
    text = str(cursor)
    if not (text.isascii() and text.isdigit()) or int(text) >= 2**64:
        raise ValueError(f"cursor must be a SCAN cursor (0 to 2**64-1), got {text[:40]!r}")
    return int(text)


_LENGTH = {"string": "strlen", "hash": "hlen", "set": "scard", "zset": "zcard", "list": "llen",
           "stream": "xlen"}  # fmt: skip


def _idle_or_freq(client: Any, key: bytes, out: dict[str, Any], missing: dict[str, str]) -> None:
    """OBJECT IDLETIME errors under an LFU policy and OBJECT FREQ under LRU: try both."""
    idle = attempt("OBJECT IDLETIME", client.object, "idletime", key)
    if idle["available"]:
        out["idle_seconds"] = idle["data"]
        missing["lfu_frequency"] = "not tracked: maxmemory-policy is not an LFU policy"
        return
    if "LFU" not in idle["reason"]:
        missing["idle_seconds"] = missing["lfu_frequency"] = idle["reason"]
        return
    missing["idle_seconds"] = "not tracked under an LFU maxmemory-policy"
    freq = attempt("OBJECT FREQ", client.object, "freq", key)
    if freq["available"]:
        out["lfu_frequency"] = freq["data"]
    else:
        missing["lfu_frequency"] = freq["reason"]


def _preview(client: Any, kind: str, key: bytes, out: dict[str, Any], page: dict) -> dict:
    length = out["length"] or 0
    if kind == "string":
        return string_page(client, key, length, page["offset"], page["string_bytes"])
    hint = out["bytes"] / length if out["bytes"] and length else None
    return collection_page(client, kind, key, length, page, hint)


def key_detail(
    client: Any,
    key: bytes,
    *,
    cursor: str | int | None = None,
    offset: int = 0,
    limit: int = 100,
    order: str = "asc",
    start: str | None = None,
    string_bytes: int = 4096,
    element_bytes: int = 256,
) -> dict[str, Any]:
    """Metadata and one preview page of ``key``.

    Paging: ``cursor`` for hashes/sets (SCAN cursor from the previous ``next``),
    ``offset`` for lists/sorted sets (negative counts from the tail) and strings (bytes),
    ``start`` for streams (entry id, inclusive), ``order`` "asc"/"desc" for sorted sets
    and streams. ``limit`` elements per page (at most 1000). Bad page parameters raise
    ``ValueError``; Redis problems never raise except :class:`RedisUnavailable`.
    """
    key = bytes(key)
    if order not in ("asc", "desc"):
        raise ValueError(f"order must be 'asc' or 'desc', got {order!r}")
    if start is not None and str(start) not in ("-", "+"):
        if str(start).startswith("("):
            raise ValueError("start is inclusive here: give an entry id without '('")
        check_id(str(start), "start")
    page = {
        "cursor": _scan_cursor(cursor),
        "offset": _clamp(offset, -(2**62), 2**62, "offset"),
        "limit": _clamp(limit, 1, MAX_PAGE, "limit"),
        "order": order,
        "start": None if start is None else str(start),
        "string_bytes": _clamp(string_bytes, 1, MAX_STRING_BYTES, "string_bytes"),
        "element_bytes": _clamp(element_bytes, 1, MAX_ELEMENT_BYTES, "element_bytes"),
    }
    out: dict[str, Any] = {
        "key": display_key(key, KEY_DISPLAY_BYTES),
        "key_length": len(key),
        "key_address": key_address(key),
        **dict.fromkeys(("exists", "type", "module_type", "encoding", "ttl_ms", "bytes")),
        **dict.fromkeys(("idle_seconds", "lfu_frequency", "length", "preview")),
    }
    missing: dict[str, str] = {}
    try:
        raw_type = client.type(key)
    except PoolExhausted:  # the dashboard is busy: say so, not that Redis is down
        raise
    except (*CONNECTION_ERRORS, DeadlineExceeded) as exc:  # nothing known: no page
        raise unreachable(exc) from exc
    except ERRORS as exc:
        return {**out, "unavailable": {"type": describe_error("TYPE", exc)}}
    kind = raw_type.decode("utf-8", "replace") if isinstance(raw_type, bytes) else str(raw_type)
    ttl = attempt("PTTL", client.pttl, key)
    if kind == "none" or ttl.get("data") == -2:
        return {**out, "exists": False, "unavailable": {}}
    out.update(exists=True, type=kind, module_type=kind not in _KNOWN_TYPES)
    out["ttl_ms"] = ttl["data"] if ttl["available"] and ttl["data"] >= 0 else None
    for field, what, fn, args in (
        ("encoding", "OBJECT ENCODING", client.object, ("encoding", key)),
        ("bytes", "MEMORY USAGE", client.memory_usage, (key,)),
    ):
        got = attempt(what, fn, *args)
        out[field] = got.get("data")
        if not got["available"]:
            missing[field] = got["reason"]
    if isinstance(out["encoding"], bytes):
        out["encoding"] = out["encoding"].decode("utf-8", "replace")
    if not ttl["available"]:
        missing["ttl_ms"] = ttl["reason"]
    _idle_or_freq(client, key, out, missing)
    if out["module_type"]:
        out["preview"] = {"kind": "none", "available": False, "next": None,
                          "reason": f"no preview for type {kind!r} (a module or newer "
                          "data type); its name is shown as Redis reports it"}  # fmt: skip
        return {**out, "unavailable": missing}
    size = attempt(f"{_LENGTH[kind].upper()}", getattr(client, _LENGTH[kind]), key)
    out["length"] = size.get("data")
    if not size["available"]:
        missing["length"] = size["reason"]
    if kind == "string":
        header = attempt("GETRANGE", client.getrange, key, 0, 15).get("data") or b""
        if bytes(header).startswith(b"HYLL"):
            hll = attempt("PFCOUNT", hll_page, client, key, bytes(header))
            if hll["available"]:
                out.update(type="hll", preview={**hll["data"], "available": True})
                return {**out, "unavailable": missing}
    shown = attempt(f"{kind} preview", _preview, client, kind, key, out, page)
    out["preview"] = (
        {**shown["data"], "available": True}
        if shown["available"]
        else {"kind": kind, "available": False, "reason": shown["reason"], "next": None}
    )
    return {**out, "unavailable": missing}
