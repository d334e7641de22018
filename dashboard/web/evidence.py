"""Audit evidence as a person reads it: labels in words, sizes in KiB/MiB, shares in
percent, durations as durations, and example keys as links.

Rules keep their evidence machine-shaped (snake_case names, raw numbers) because
``/audit.json``, SARIF and CI gates read it; this module only decides how the page
says it. :func:`rows` turns one finding's evidence into ``{"label", "kind", "value"}``
rows the template renders by ``kind``.
"""

from __future__ import annotations

from typing import Any

from dashboard.keyid import encode_key, parse_display

LABELS = {
    "keys": "keys",
    "without_ttl": "without a TTL",
    "with_ttl": "with a TTL",
    "share": "share",
    "ttl_share": "share with a TTL",
    "examples": "for example",
    "keys_over": "keys over the limit",
    "max_bytes": "limit",
    "largest_bytes": "largest",
    "longest_bytes": "longest",
    "top": "biggest",
    "limits": "limits",
    "types": "types",
    "slowest_us": "slowest",
    "total_us": "total time",
    "duration_us": "took",
    "used_memory": "memory used",
    "maxmemory": "memory limit",
    "maxmemory_policy": "eviction policy",
    "total_system_memory": "system memory",
    "used_memory_scripts_eval": "memory of cached scripts",
    "number_of_cached_scripts": "cached scripts",
    "max_idle_ms": "idle for",
    "idle_ms": "idle for",
    "first_entry_age_ms": "oldest entry",
    "seconds_over_threshold": "seconds over the threshold",
    "keys_in_second": "keys expiring in that second",
    "lag_is_lower_bound": "lag is a lower bound",
    "stream_length": "stream length",
    "max_delivery_count": "most deliveries",
    "consumers_with_pending": "consumers with pending entries",
    "scanned_db": "database scanned",
    "must_not_evict": "must not be evicted",
    "protected_mode": "protected mode",
}
_PERCENT = {"share", "ttl_share"}
_KEY_FIELDS = {"key", "examples"}


def label(name: str) -> str:
    """``without_ttl`` -> ``without a TTL``; unknown names lose their underscores."""
    return LABELS.get(name) or name.replace("_", " ")


def kind_of(name: str, value: Any) -> str:
    """How to show a value: bytes, percent, duration_ms, duration_us, number, bool, text."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        if name in _PERCENT:
            return "percent"
        if name.endswith("_bytes") or name in (
            "bytes",
            "memory",
            "used_memory",
            "maxmemory",
            "total_system_memory",
            "used_memory_scripts_eval",
        ):
            return "bytes"
        if name.endswith("_ms"):
            return "duration_ms"
        if name.endswith("_us"):
            return "duration_us"
        return "number"
    return "text"


def key_link(text: str) -> dict[str, Any]:
    """An example key (display text): its address when the text is the whole name
    (names cut for display end with ``… (N bytes)`` and cannot be opened)."""
    if not isinstance(text, str) or text.endswith(" bytes)"):
        return {"text": str(text), "id": None}
    return {"text": text, "id": encode_key(parse_display(text))}


def _top(items: list[Any]) -> list[dict[str, Any]]:
    out = []
    for item in items:
        if not isinstance(item, dict):
            out.append({"key": key_link(str(item)), "facts": []})
            continue
        facts = [
            {"label": label(k), "kind": kind_of(k, v), "value": v}
            for k, v in item.items()
            if k != "key"
        ]
        out.append({"key": key_link(item["key"]) if "key" in item else None, "facts": facts})
    return out


def rows(evidence: dict[str, Any]) -> list[dict[str, Any]]:
    """One finding's evidence as display rows (``kind``: a scalar kind, ``keys``, ``top``,
    ``mapping`` or ``list``)."""
    out = []
    for name, value in evidence.items():
        row: dict[str, Any] = {"name": name, "label": label(name)}
        if name in _KEY_FIELDS and isinstance(value, str):
            row.update(kind="keys", value=[key_link(value)])
        elif name == "examples" and isinstance(value, list):
            row.update(kind="keys", value=[key_link(v) for v in value])
        elif name == "top" and isinstance(value, list):
            row.update(kind="top", value=_top(value))
        elif isinstance(value, dict):
            sub = [{"label": label(k), "kind": kind_of(k, v), "value": v} for k, v in value.items()]
            row.update(kind="mapping", value=sub)
        elif isinstance(value, list):
            row.update(kind="list", value=[str(v) for v in value])
        elif value is None:
            row.update(kind="text", value="—")
        else:
            row.update(kind=kind_of(name, value), value=value)
        out.append(row)
    return out
