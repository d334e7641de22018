"""One bounded page of a key's value, per type, for the key detail page.

Every read is bounded (GETRANGE for strings, HSCAN/SSCAN with COUNT, index windows
for lists and sorted sets, XRANGE/XREVRANGE with COUNT for streams), and so is the
page as a whole, whatever ``limit`` and ``element_bytes`` ask for:

* **Read budget.** Redis cannot read part of a hash field, set member or list
  element, so elements are fetched whole; they are fetched in chunks sized from the
  average element seen so far (or MEMORY USAGE), and the page stops once
  ``PAGE_READ_BYTES`` were read. ``next`` then continues exactly where it stopped
  (a SCAN cursor is a valid resume point after any call).
* **Display budget.** The shown text of all elements of a page stays under
  ``PAGE_TEXT_BYTES``: when ``limit`` x ``element_bytes`` would exceed it, the
  elements are cut to the largest common length that fits (short elements whole,
  long ones cut). The page says both, with the effective cut.
* **JSON.** A string is pretty-printed only when it is shown whole, nests at most
  ``MAX_JSON_DEPTH`` deep (checked before parsing: ``[[[[...`` is a RecursionError
  in ``json.loads``) and fits in 4x the bound.

Fields: docs/keydetail.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from dashboard.inspect.errors import attempt
from dashboard.keyid import display_bytes, escape_bytes

PAGE_READ_BYTES = 8 * 1024 * 1024
PAGE_TEXT_BYTES = 2 * 1024 * 1024
MIN_SHOWN_BYTES = 16  # no element is cut shorter than this to fit the page
FIRST_CHUNK = 32  # elements in the first read when their size is unknown
MAX_JSON_DEPTH = 100
MAX_STREAM_FIELDS = 64
_HLL_REPRESENTATION = {0: "dense", 1: "sparse"}
_JSON_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')

Fetch = Callable[[Any, int], tuple[list[Any], Any]]


def json_depth_within(data: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``data`` nests at most ``limit`` arrays/objects deep (strings skipped)."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return True
    depth = 0
    for token in _JSON_TOKEN.finditer(data):
        char = token.group()
        if char in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return False
        elif char in (b"]", b"}"):
            depth -= 1
    return True


def pretty_json(data: bytes, bound: int) -> str | None:
    """Indented JSON for an object/array that is shallow and small enough, else None."""
    if data.lstrip()[:1] not in (b"{", b"[") or not json_depth_within(data):
        return None
    try:
        pretty = json.dumps(json.loads(data), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):
        return None
    return pretty if len(pretty) <= 4 * bound else None


def looks_binary(data: bytes) -> bool:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A cut at the bound may split the last character: that is still text.
        if exc.start < len(data) - 3 or exc.reason != "unexpected end of data":
            return True
        text = data[: exc.start].decode("utf-8")
    return any(ord(c) < 32 and c not in "\t\n\r" for c in text)


def fair_cut(lengths: list[int], budget: int, bound: int) -> int:
    """The largest cut ``c <= bound`` with ``sum(min(n, c)) <= budget`` (water-filling:
    short elements stay whole, long ones share what is left), at least MIN_SHOWN_BYTES."""
    if sum(min(n, bound) for n in lengths) <= budget:
        return bound
    left, count = budget, len(lengths)
    for i, n in enumerate(sorted(lengths)):
        share = left // (count - i)
        if n > share:
            return max(MIN_SHOWN_BYTES, min(bound, share))
        left -= n
    return bound


class Page:
    """The budgets of one page: what was read, and the common cut for display."""

    def __init__(self, element_bytes: int, hint: float | None) -> None:
        self.element_bytes = element_bytes
        self.hint = hint  # average element size (MEMORY USAGE / length), when known
        self.read = 0
        self.capped = False
        self.cut = element_bytes

    def gather(self, fetch: Fetch, start: Any, limit: int, size: Callable[[Any], int]) -> tuple:
        """Rows from ``fetch(position, count) -> (rows, next)`` until ``limit`` rows, the
        end (``next`` None) or the read budget; returns ``(rows, next)``."""
        rows: list[Any] = []
        position = start
        average = self.hint
        while True:
            want = limit - len(rows)
            if average:
                left = max(PAGE_READ_BYTES - self.read, 0)
                want = min(want, max(1, int(left // max(average, 1))))
            elif not rows:
                want = min(want, FIRST_CHUNK)
            got, position = fetch(position, max(1, want))
            rows += got
            self.read += sum(size(row) for row in got)
            if position is None or len(rows) >= limit:
                return rows, position
            if self.read >= PAGE_READ_BYTES:
                self.capped = True
                return rows, position
            average = self.read / max(len(rows), 1)

    def fit(self, parts: list[bytes]) -> None:
        """Choose the common cut so the page's shown text stays under PAGE_TEXT_BYTES."""
        self.cut = fair_cut([len(p) for p in parts], PAGE_TEXT_BYTES, self.element_bytes)

    def show(self, data: Any) -> dict[str, Any]:
        return display_bytes(bytes(data), self.cut)

    def summary(self) -> dict[str, Any]:
        """What the page tells about its own bounds (fields in docs/keydetail.md)."""
        notes = []
        if self.capped:
            notes.append(
                f"this page stopped after {PAGE_READ_BYTES // 2**20} MiB of elements; "
                "the next page continues from here"
            )
        if self.cut < self.element_bytes:
            notes.append(
                f"elements cut to {self.cut:,} bytes (asked {self.element_bytes:,}) to keep "
                f"the page under {PAGE_TEXT_BYTES // 2**20} MiB of text; ask a smaller limit "
                "to see more of each"
            )
        return {
            "element_bytes": self.cut,
            "read_capped": self.capped,
            "page_note": "; ".join(notes) or None,
        }


# --- one reader per type ------------------------------------------------------------------


def string_page(client: Any, key: bytes, length: int, offset: int, bound: int) -> dict:
    offset = max(0, offset)
    chunk = bytes(client.getrange(key, offset, offset + bound - 1)) if offset < length else b""
    end = offset + len(chunk)
    complete = offset == 0 and end >= length
    binary = looks_binary(chunk)
    pretty = None if binary or not complete else pretty_json(chunk, bound)
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


def hll_page(client: Any, key: bytes, header: bytes) -> dict[str, Any]:
    return {
        "kind": "hll",
        "cardinality": int(client.pfcount(key)),
        "representation": _HLL_REPRESENTATION.get(header[4] if len(header) > 4 else -1),
        "note": "HyperLogLog: an estimate of unique items (standard error 0.81%); "
        "its registers are not shown",
        "next": None,
    }


def _scan_page(client: Any, kind: str, key: bytes, page: dict[str, Any], budget: Page) -> dict:
    def fetch(cursor: int, count: int) -> tuple[list[Any], int | None]:
        if kind == "hash":
            nxt, found = client.hscan(key, cursor, count=count)
            rows = list(found.items())
        else:
            nxt, found = client.sscan(key, cursor, count=count)
            rows = [(m,) for m in found]
        return rows, nxt or None

    rows, nxt = budget.gather(fetch, page["cursor"], page["limit"], _row_bytes)
    budget.fit([part for row in rows for part in row])
    if kind == "hash":
        items = [{"field": budget.show(f), "value": budget.show(v)} for f, v in rows]
    else:
        items = [{"member": budget.show(m)} for (m,) in rows]
    return {"kind": kind, "cursor": str(page["cursor"]), "items": items,
            "next": None if nxt is None else str(nxt)}  # fmt: skip


def _row_bytes(row: tuple[bytes, ...]) -> int:
    return sum(len(part) for part in row)


def _window(offset: int, limit: int, length: int) -> tuple[int, int | None]:
    """Absolute start of an index window (negative offsets count from the tail), prev."""
    start = offset if offset >= 0 else max(0, length + offset)
    return start, (max(0, start - limit) if start > 0 else None)


def _indexed_page(
    client: Any, kind: str, key: bytes, length: int, page: dict[str, Any], budget: Page
) -> dict[str, Any]:
    start, prev = _window(page["offset"], page["limit"], length)
    desc = page["order"] == "desc"

    def fetch(position: int, count: int) -> tuple[list[Any], int | None]:
        stop = position + count - 1
        if kind == "zset":
            rows = client.zrange(key, position, stop, desc=desc, withscores=True)
        else:
            rows = [(v,) for v in client.lrange(key, position, stop)]
        after = position + len(rows)
        return rows, (after if rows and after < length else None)

    rows, nxt = budget.gather(fetch, start, page["limit"], lambda row: len(row[0]) + 8)
    budget.fit([row[0] for row in rows])
    out: dict[str, Any] = {"kind": kind, "offset": start, "next": nxt, "prev": prev}
    if kind == "zset":
        out["order"] = page["order"]
        out["items"] = [
            {"rank": start + i, "member": budget.show(m), **_score(s)}
            for i, (m, s) in enumerate(rows)
        ]
    else:
        out["items"] = [
            {"index": start + i, "value": budget.show(v)} for i, (v,) in enumerate(rows)
        ]
    return out


def _score(score: float) -> dict[str, Any]:
    finite = score == score and score not in (float("inf"), float("-inf"))
    return {"score": score if finite else None, "score_text": repr(score)}


def _pairs(fields: Any) -> list[tuple[Any, Any]]:
    if isinstance(fields, dict):
        return list(fields.items())
    # a raw flat reply keeps duplicate field names, which streams allow
    return list(zip(fields[::2], fields[1::2], strict=False))


def _stream_page(client: Any, key: bytes, page: dict[str, Any], budget: Page) -> dict:
    desc = page["order"] == "desc"

    def fetch(position: str | None, count: int) -> tuple[list[Any], str | None]:
        if desc:
            rows = client.xrevrange(key, max=position or "+", min="-", count=count + 1)
        else:
            rows = client.xrange(key, min=position or "-", max="+", count=count + 1)
        more = rows[count][0] if len(rows) > count else None
        return [(i, _pairs(f)) for i, f in rows[:count]], more

    def size(row: tuple[Any, list[tuple[Any, Any]]]) -> int:
        return sum(len(f) + len(v) for f, v in row[1])

    rows, nxt = budget.gather(fetch, page["start"], page["limit"], size)
    budget.fit([p for _i, pairs in rows for pair in pairs[:MAX_STREAM_FIELDS] for p in pair])
    info = attempt("XINFO STREAM", client.xinfo_stream, key).get("data") or {}
    last = info.get("last-generated-id")
    return {
        "kind": "stream",
        "order": page["order"],
        "start": page["start"],
        "items": [_entry(i, pairs, budget) for i, pairs in rows],
        "next": None if nxt is None else _id_text(nxt),
        "groups": info.get("groups"),
        "last_generated_id": escape_bytes(last) if isinstance(last, bytes) else last,
    }


def _id_text(entry_id: Any) -> str:
    return escape_bytes(entry_id) if isinstance(entry_id, bytes) else str(entry_id)


def _entry(entry_id: Any, pairs: list[tuple[Any, Any]], budget: Page) -> dict[str, Any]:
    return {
        "id": _id_text(entry_id),
        "fields": [
            {"field": budget.show(f), "value": budget.show(v)} for f, v in pairs[:MAX_STREAM_FIELDS]
        ],
        "field_count": len(pairs),
    }


def collection_page(
    client: Any, kind: str, key: bytes, length: int, page: dict[str, Any], hint: float | None
) -> dict[str, Any]:
    """One bounded page of a hash, set, sorted set, list or stream."""
    budget = Page(page["element_bytes"], hint)
    if kind in ("hash", "set"):
        out = _scan_page(client, kind, key, page, budget)
    elif kind in ("zset", "list"):
        out = _indexed_page(client, kind, key, length, page, budget)
    else:
        out = _stream_page(client, key, page, budget)
    return {**out, **budget.summary()}
