"""Template filters: human sizes, durations and counts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Flask

_UNITS = ("B", "KB", "MB", "GB", "TB")


def human_bytes(value: Any) -> str:
    """1536 -> '1.5 KB' (binary multiples, as INFO's used_memory_human)."""
    if value is None:
        return "—"
    size = float(value)
    for unit in _UNITS:
        if abs(size) < 1024 or unit == _UNITS[-1]:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def human_ms(value: Any) -> str:
    """A duration in ms as '850 ms', '12.3 s', '4 min', '3.2 h', '2.1 d'; None -> '—'."""
    if value is None:
        return "—"
    ms = float(value)
    if ms < 0:
        return "no TTL" if ms == -1 else "—"
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def number(value: Any) -> str:
    """12345 -> '12,345'; None -> '—'."""
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


def percent(value: Any) -> str:
    """0.4567 -> '45.7 %'; None -> '—'."""
    if value is None:
        return "—"
    return f"{float(value) * 100:.1f} %"


def timestamp(value: Any) -> str:
    """Unix seconds -> '2026-11-27 03:15:26 UTC'; None or 0 -> '—'."""
    if not value:
        return "—"
    moment = datetime.fromtimestamp(float(value), tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def clock(value: Any) -> str:
    """Unix seconds -> '03:15:26 UTC' (the time of day a reading was taken); None -> '—'."""
    if not value:
        return "—"
    return datetime.fromtimestamp(float(value), tz=UTC).strftime("%H:%M:%S UTC")


def isotime(value: Any) -> str:
    """Unix seconds -> ISO 8601 (for <time datetime>); None -> ''."""
    if not value:
        return ""
    return datetime.fromtimestamp(float(value), tz=UTC).isoformat(timespec="milliseconds")


def install(app: Flask) -> None:
    app.jinja_env.filters.update(
        human_bytes=human_bytes,
        human_ms=human_ms,
        number=number,
        percent=percent,
        timestamp=timestamp,
        clock=clock,
        isotime=isotime,
    )
