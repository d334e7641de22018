"""User-defined detectors: a TOML file of ``[[pattern]]`` tables (``detectors_file``).

Applications invent their own limiter and lock keys; a pattern tells the dashboard
where they are (a SCAN glob) and how to read them: limit and window as fixed values
or captured from the key name by a regex with named groups. See docs/live.md::

    [[pattern]]
    name = "api quota"
    kind = "ratelimit"                 # or "lock"
    match = "quota:*"                  # SCAN MATCH glob
    regex = '^quota:(?P<identity>[^:]+):(?P<limit>\\d+):(?P<window>\\d+)$'
    algorithm = "counter"              # string counter with TTL, or "log" (sorted set)
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from dashboard.inspect.live.claims import (
    KINDS,
    LOCK,
    RATELIMIT,
    Claim,
    DetectorConfigError,
    glob_regex,
    lock_claim,
    star_part,
)
from dashboard.keyid import display_key
from dashboard.tomlfile import read_toml

USER_ALGORITHMS = ("counter", "log")
SCORE_UNITS = {"s": 1000.0, "ms": 1.0, "us": 0.001}  # one score unit in ms


@dataclass(frozen=True)
class UserPattern:
    """One ``[[pattern]]`` table of the detectors file."""

    name: str
    kind: str
    match: str
    regex: re.Pattern[bytes] | None = None
    algorithm: str = "counter"
    limit: int | None = None
    window_ms: int | None = None
    score_ms: float = 1000.0
    glob: re.Pattern[bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "glob", glob_regex(self.match))

    def claim(self, key: bytes) -> Claim | None:
        if not self.glob.fullmatch(key):
            return None
        groups: dict[str, bytes] = {}
        if self.regex is not None:
            found = self.regex.search(key)
            if found is None:
                return None
            groups = {k: v for k, v in found.groupdict().items() if v is not None}
        if self.kind == LOCK:
            part = groups.get("resource") or groups.get("identity")
            return lock_claim(key, self.name, part or star_part(self.glob.fullmatch(key)))
        limit = _group_int(groups.get("limit")) or self.limit
        window_ms = self.window_ms
        if "window_ms" in groups:
            window_ms = _group_int(groups["window_ms"])
        elif "window" in groups:
            seconds = _group_int(groups["window"])
            window_ms = seconds * 1000 if seconds else None
        if limit is None or (self.algorithm == "log" and window_ms is None):
            return None  # the key does not say what the pattern promised
        limiter = groups.get("limiter")
        identity = groups.get("identity", key)
        return Claim(
            RATELIMIT,
            self.name,
            "log" if self.algorithm == "log" else "fixed",
            key,
            display_key(limiter) if limiter else self.name,
            display_key(identity),
            self.algorithm,
            limit,
            window_ms,
            score_ms=self.score_ms,
        )


def _group_int(value: bytes | None) -> int | None:
    if value is None or not value.isdigit():
        return None
    return int(value) or None


def _positive(entry: dict[str, Any], name: str, where: str) -> float | None:
    value = entry.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise DetectorConfigError(f"{where}: {name} must be a positive number, got {value!r}")
    return value


def _user_pattern(entry: Any, where: str) -> UserPattern:
    if not isinstance(entry, dict):
        raise DetectorConfigError(f"{where}: must be a table")
    unknown = set(entry) - {"name", "kind", "match", "regex", "algorithm", "limit", "window"}
    unknown -= {"window_ms", "score_unit"}
    if unknown:
        raise DetectorConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    name, kind, match = entry.get("name"), entry.get("kind"), entry.get("match")
    if not isinstance(name, str) or not name:
        raise DetectorConfigError(f"{where}: needs a name")
    where = f"{where} ({name})"
    if kind not in KINDS:
        raise DetectorConfigError(f"{where}: kind must be one of {', '.join(KINDS)}")
    if not isinstance(match, str) or not match:
        raise DetectorConfigError(f"{where}: needs match, a SCAN glob such as 'quota:*'")
    regex = None
    if entry.get("regex") is not None:
        try:
            regex = re.compile(str(entry["regex"]).encode("utf-8"), re.DOTALL)
        except re.error as exc:
            raise DetectorConfigError(f"{where}: regex does not compile: {exc}") from exc
    algorithm = entry.get("algorithm", "counter")
    if kind == RATELIMIT and algorithm not in USER_ALGORITHMS:
        raise DetectorConfigError(f"{where}: algorithm must be one of {USER_ALGORITHMS}")
    limit = _positive(entry, "limit", where)
    window = _positive(entry, "window", where)
    window_ms = _positive(entry, "window_ms", where)
    groups = set(regex.groupindex) if regex else set()
    if kind == RATELIMIT and limit is None and "limit" not in groups:
        raise DetectorConfigError(f"{where}: set limit, or capture it with (?P<limit>...)")
    unit = entry.get("score_unit", "s")
    if unit not in SCORE_UNITS:
        raise DetectorConfigError(f"{where}: score_unit must be one of {', '.join(SCORE_UNITS)}")
    if window_ms is None and window is not None:
        window_ms = window * 1000
    return UserPattern(
        name,
        kind,
        match,
        regex,
        algorithm,
        None if limit is None else int(limit),
        None if window_ms is None else round(window_ms),
        SCORE_UNITS[unit],
    )


def load_user_patterns(path: str) -> list[UserPattern]:
    """The ``[[pattern]]`` tables of a TOML file (see docs/live.md)."""
    doc = read_toml(path, "detectors file", DetectorConfigError)
    unknown = set(doc) - {"pattern"}
    if unknown:
        raise DetectorConfigError(f"detectors file {path}: unknown table(s) {sorted(unknown)}")
    entries = doc.get("pattern", [])
    if not isinstance(entries, list):
        raise DetectorConfigError(f"detectors file {path}: use [[pattern]] tables")
    return [_user_pattern(e, f"{path}: pattern #{i + 1}") for i, e in enumerate(entries)]


_file_cache: dict[str, tuple[float, list[UserPattern]]] = {}
_file_lock = threading.Lock()


def cached_user_patterns(path: str) -> list[UserPattern]:
    """Reloaded when the file changes, so edits apply without a restart."""
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        mtime = -1.0
    with _file_lock:
        cached = _file_cache.get(path)
        if cached and cached[0] == mtime:
            return cached[1]
    patterns = load_user_patterns(path)
    with _file_lock:
        _file_cache[path] = (mtime, patterns)
    return patterns
