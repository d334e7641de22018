"""Where a target's state file lives.

Default: ``$XDG_STATE_HOME/redis-dashboard/<target>.sqlite`` (``~/.local/state`` when
the variable is unset), one file per target. ``--state PATH`` (``REDIS_DASHBOARD_STATE``)
chooses: a path ending in ``.sqlite``, ``.sqlite3`` or ``.db`` is the file itself (with
several targets each gets ``<stem>-<target><suffix>`` beside it); any other path is a
directory holding one ``<target>.sqlite`` per target. ``--no-state`` keeps nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

FILE_SUFFIXES = (".sqlite", ".sqlite3", ".db")
APP_DIR = "redis-dashboard"


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/redis-dashboard`` (the XDG base directory spec's state home)."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_STATE_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path.home() / ".local" / "state"
    return root / APP_DIR


def _stem(target: str, url: str) -> str:
    """The target's name, plus ``-db<N>`` when its URL names a database other than 0
    (two dashboards on db 0 and db 1 of one server must not share a history)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", target).strip("-.") or "redis"
    try:
        parts = urlsplit(url)
    except ValueError:
        return stem
    db = None
    if parts.scheme in ("redis", "rediss"):
        match = re.fullmatch(r"/(\d+)", parts.path)
        db = match.group(1) if match else None
    elif parts.scheme == "unix":
        match = re.search(r"(?:^|&)db=(\d+)", parts.query)
        db = match.group(1) if match else None
    if db is not None and int(db) != 0:
        stem += f"-db{int(db)}"
    return stem


def state_file(
    state: str,
    no_state: bool,
    target: str,
    url: str,
    *,
    several: bool = False,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The state file of one target ("" when history is off)."""
    if no_state:
        return ""
    stem = _stem(target, url)
    if not state:
        return str(state_dir(environ) / f"{stem}.sqlite")
    path = Path(state).expanduser()
    if path.suffix.lower() in FILE_SUFFIXES and not path.is_dir():
        if several:
            path = path.with_name(f"{path.stem}-{stem}{path.suffix}")
        return str(path)
    return str(path / f"{stem}.sqlite")
