"""Key detail: metadata and a bounded, paged preview of one key of any type.

The dashboard opens keys it *found*, so nothing here may assume a key is small:
every read is bounded (GETRANGE for strings, HSCAN/SSCAN with COUNT, index windows
for lists and sorted sets, XRANGE/XREVRANGE with COUNT for streams). There is no
HGETALL, SMEMBERS, ``LRANGE 0 -1`` or ``XRANGE - +`` without COUNT on this path.
Collection elements are fetched whole (Redis cannot range inside a hash field or a
list element) but each page holds at most ``limit`` of them, and each is displayed
truncated to ``element_bytes`` with its full length.

Metadata comes first and with NOTOUCH commands (TYPE, PTTL, OBJECT, MEMORY USAGE),
so the idle time shown is the key's, not the effect of the dashboard reading it.
Commands the server refuses or lacks (ACL, managed services, fakeredis) leave that
field ``None`` with the reason in ``unavailable``; only an unreachable server raises
:class:`~dashboard.inspect.errors.RedisUnavailable`. Values are returned as escaped
plain text, never markup: templates escape them. Fields: docs/keydetail.md.
"""

from __future__ import annotations

import json
from typing import Any

from dashboard.inspect.errors import (
    CONNECTION_ERRORS,
    ERRORS,
    attempt,
    describe_error,
    unreachable,
)
from dashboard.inspect.live.streams import check_id
from dashboard.keyid import display_bytes, display_key, escape_bytes, key_address

MAX_PAGE = 1000
MAX_STRING_BYTES = 1024 * 1024
MAX_ELEMENT_BYTES = 64 * 1024  # shown per element; a page holds at most MAX_PAGE of them
MAX_STREAM_FIELDS = 64
KEY_DISPLAY_BYTES = 1024
_KNOWN_TYPES = {"string", "hash", "set", "zset", "list", "stream"}
_HLL_REPRESENTATION = {0: "dense", 1: "sparse"}


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
    if not text.isdigit():
        raise ValueError(f"cursor must be a non-negative integer, got {text[:40]!r}")
    return int(text)


def _window(offset: int, limit: int, length: int) -> tuple[int, int | None, int | None]:
    """Absolute start of an index window (negative offsets count from the tail), next, prev."""
    start = offset if offset >= 0 else max(0, length + offset)
    nxt = start + limit if start + limit < length else None
    prev = max(0, start - limit) if start > 0 else None
    return start, nxt, prev


def _looks_binary(data: bytes) -> bool:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A cut at the bound may split the last character: that is still text.
        if exc.start < len(data) - 3 or exc.reason != "unexpected end of data":
            return True
        text = data[: exc.start].decode("utf-8")
    return any(ord(c) < 32 and c not in "\t\n\r" for c in text)


def _pretty_json(data: bytes, bound: int) -> str | None:
    if data.lstrip()[:1] not in (b"{", b"["):
        return None
    try:
        parsed = json.loads(data)
    except ValueError:
        return None
    pretty = json.dumps(parsed, indent=2, ensure_ascii=False)
    return pretty if len(pretty) <= 4 * bound else None


def _string(client: Any, key: bytes, length: int, offset: int, bound: int) -> dict[str, Any]:
    offset = max(0, offset)
    chunk = bytes(client.getrange(key, offset, offset + bound - 1)) if offset < length else b""
    end = offset + len(chunk)
    complete = offset == 0 and end >= length
    binary = _looks_binary(chunk)
    pretty = None if binary or not complete else _pretty_json(chunk, bound)
    return {
        "kind": "string",
        "offset": offset,
        "shown_bytes": len(chunk),
        "truncated": not complete,
        "format": "binary" if binary else "json" if pretty is not None else "text",
        "text": escape_bytes(chunk),
        "json": pretty,
        "hex": chunk.hex(" ") if binary else None,
        "next": end if end < length else None,
    }


def _hll(client: Any, key: bytes, header: bytes) -> dict[str, Any]:
    return {
        "kind": "hll",
        "cardinality": int(client.pfcount(key)),
        "representation": _HLL_REPRESENTATION.get(header[4] if len(header) > 4 else -1),
        "note": "HyperLogLog: an estimate of unique items (standard error 0.81%); "
        "its registers are not shown",
        "next": None,
    }


def _scan(client: Any, kind: str, key: bytes, cursor: int, limit: int, eb: int) -> dict:
    if kind == "hash":
        nxt, page = client.hscan(key, cursor, count=limit)
        items = [
            {"field": display_bytes(f, eb), "value": display_bytes(v, eb)} for f, v in page.items()
        ]
    else:
        nxt, page = client.sscan(key, cursor, count=limit)
        items = [{"member": display_bytes(m, eb)} for m in page]
    return {"kind": kind, "cursor": str(cursor), "items": items, "next": str(nxt) if nxt else None}


def _score(score: float) -> dict[str, Any]:
    finite = score == score and score not in (float("inf"), float("-inf"))
    return {"score": score if finite else None, "score_text": repr(score)}


def _zset(client: Any, key: bytes, length: int, page: dict[str, Any], eb: int) -> dict:
    start, nxt, prev = _window(page["offset"], page["limit"], length)
    desc = page["order"] == "desc"
    rows = client.zrange(key, start, start + page["limit"] - 1, desc=desc, withscores=True)
    items = [
        {"rank": start + i, "member": display_bytes(m, eb), **_score(s)}
        for i, (m, s) in enumerate(rows)
    ]
    return {"kind": "zset", "order": page["order"], "offset": start, "items": items,
            "next": nxt, "prev": prev}  # fmt: skip


def _list(client: Any, key: bytes, length: int, page: dict[str, Any], eb: int) -> dict:
    start, nxt, prev = _window(page["offset"], page["limit"], length)
    rows = client.lrange(key, start, start + page["limit"] - 1)
    items = [{"index": start + i, "value": display_bytes(v, eb)} for i, v in enumerate(rows)]
    return {"kind": "list", "offset": start, "items": items, "next": nxt, "prev": prev}


def _entry(entry_id: Any, fields: Any, eb: int) -> dict[str, Any]:
    if isinstance(fields, dict):
        pairs = list(fields.items())
    else:  # a raw flat reply keeps duplicate field names, which streams allow
        pairs = list(zip(fields[::2], fields[1::2], strict=False))
    return {
        "id": escape_bytes(entry_id) if isinstance(entry_id, bytes) else str(entry_id),
        "fields": [
            {"field": display_bytes(f, eb), "value": display_bytes(v, eb)}
            for f, v in pairs[:MAX_STREAM_FIELDS]
        ],
        "field_count": len(pairs),
    }


def _stream(client: Any, key: bytes, page: dict[str, Any], eb: int) -> dict[str, Any]:
    limit, start = page["limit"], page["start"]
    if page["order"] == "desc":
        rows = client.xrevrange(key, max=start or "+", min="-", count=limit + 1)
    else:
        rows = client.xrange(key, min=start or "-", max="+", count=limit + 1)
    info = attempt("XINFO STREAM", client.xinfo_stream, key).get("data") or {}
    last = info.get("last-generated-id")
    return {
        "kind": "stream",
        "order": page["order"],
        "start": start,
        "items": [_entry(i, f, eb) for i, f in rows[:limit]],
        "next": _entry(*rows[limit], eb)["id"] if len(rows) > limit else None,
        "groups": info.get("groups"),
        "last_generated_id": escape_bytes(last) if isinstance(last, bytes) else last,
    }


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


def _preview(client: Any, kind: str, key: bytes, length: int, page: dict[str, Any]) -> dict:
    eb = page["element_bytes"]
    if kind == "string":
        return _string(client, key, length, page["offset"], page["string_bytes"])
    if kind in ("hash", "set"):
        return _scan(client, kind, key, page["cursor"], page["limit"], eb)
    if kind == "zset":
        return _zset(client, key, length, page, eb)
    if kind == "list":
        return _list(client, key, length, page, eb)
    return _stream(client, key, page, eb)


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
    except CONNECTION_ERRORS as exc:
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
            hll = attempt("PFCOUNT", _hll, client, key, bytes(header))
            if hll["available"]:
                out.update(type="hll", preview={**hll["data"], "available": True})
                return {**out, "unavailable": missing}
    shown = attempt(f"{kind} preview", _preview, client, kind, key, out["length"] or 0, page)
    out["preview"] = (
        {**shown["data"], "available": True}
        if shown["available"]
        else {"kind": kind, "available": False, "reason": shown["reason"], "next": None}
    )
    return {**out, "unavailable": missing}
