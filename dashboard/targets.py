"""Targets: the Redis servers one dashboard watches (a *fleet* when there are several).

Given as ``--url`` (repeated) or as a TOML file (``--targets FILE``)::

    [[target]]
    name = "cache"                          # letters, digits, . _ - (used in URLs: /t/cache/)
    url = "redis://cache.internal:6379/0"   # no password here: see below
    password_env = "CACHE_REDIS_PASSWORD"   # the password, read from this env variable
    username_env = "CACHE_REDIS_USER"       # optional, likewise
    allow_writes = false                    # optional; default: the --allow-writes setting

    [[target]]
    name = "sessions"
    url_env = "SESSIONS_REDIS_URL"          # or the whole URL from an env variable

Credentials never appear in the file when ``*_env`` is used, and wherever a target is
shown its URL goes through :func:`~dashboard.connection.mask_url`, like every URL.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from dashboard.connection import mask_url
from dashboard.tomlfile import read_toml

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_KEYS = {"name", "url", "url_env", "password_env", "username_env", "allow_writes"}


class TargetsError(ValueError):
    """A targets file or URL list that cannot be used; the message is safe to show."""


@dataclass(frozen=True)
class Target:
    """One watched Redis: its name (in URLs), its URL (secret) and whether it may be written."""

    name: str
    url: str
    allow_writes: bool = False

    def public(self) -> dict[str, Any]:
        return {"name": self.name, "url": mask_url(self.url), "allow_writes": self.allow_writes}


def name_from_url(url: str) -> str:
    """A readable default name: host and port (``cache.internal-6379``), or the socket name."""
    try:
        parts = urlsplit(url)
        where = parts.netloc.rpartition("@")[2] or parts.path
    except ValueError:
        where = ""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", where).strip("-.") or "redis"
    return name[:64]


def from_urls(urls: Sequence[str], allow_writes: bool = False) -> list[Target]:
    """Targets for ``--url`` given once or more; names from host and port, made unique."""
    targets: list[Target] = []
    taken: set[str] = set()
    for url in urls:
        base = name_from_url(url)
        name, n = base, 2
        while name in taken:
            name, n = f"{base}-{n}", n + 1
        taken.add(name)
        targets.append(Target(name, url, allow_writes))
    return targets


def _with_credentials(url: str, user: str | None, password: str | None) -> str:
    """``url`` with the user and password put in (percent-encoded)."""
    if user is None and password is None:
        return url
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise TargetsError("a target URL must look like redis://host:port/db")
    hostinfo = rest.rpartition("@")[2]
    userinfo = quote(user or "", safe="")
    if password is not None:
        userinfo += ":" + quote(password, safe="")
    return f"{scheme}://{userinfo}@{hostinfo}"


def _env(table: Mapping[str, Any], key: str, where: str, environ: Mapping[str, str]) -> str | None:
    name = table.get(key)
    if name is None:
        return None
    if not isinstance(name, str) or not name:
        raise TargetsError(f"{where}: {key} must name an environment variable")
    if name not in environ:
        raise TargetsError(f"{where}: environment variable {name} ({key}) is not set")
    return environ[name]


def parse_targets(
    data: Mapping[str, Any],
    source: str,
    *,
    allow_writes: bool = False,
    environ: Mapping[str, str] | None = None,
) -> list[Target]:
    """Targets from the parsed TOML ``data`` (``source`` names the file in messages)."""
    environ = os.environ if environ is None else environ
    tables = data.get("target")
    if not isinstance(tables, list) or not tables:
        raise TargetsError(f"{source}: no [[target]] tables")
    unknown_top = set(data) - {"target"}
    if unknown_top:
        raise TargetsError(f"{source}: unknown top-level keys {sorted(unknown_top)}")
    targets: list[Target] = []
    for n, table in enumerate(tables, 1):
        where = f"{source}: target {n}"
        if not isinstance(table, dict):
            raise TargetsError(f"{where} is not a table")
        unknown = set(table) - _KEYS
        if unknown:
            raise TargetsError(f"{where}: unknown keys {sorted(unknown)} (known: {sorted(_KEYS)})")
        name = table.get("name")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise TargetsError(
                f"{where}: name must be 1-64 letters, digits, '.', '_' or '-' (it is used in URLs)"
            )
        where = f"{source}: target {name!r}"
        url = _env(table, "url_env", where, environ) or table.get("url")
        if not isinstance(url, str) or not url:
            raise TargetsError(f"{where}: give url, or url_env naming an environment variable")
        user = _env(table, "username_env", where, environ)
        password = _env(table, "password_env", where, environ)
        writes = table.get("allow_writes", allow_writes)
        if not isinstance(writes, bool):
            raise TargetsError(f"{where}: allow_writes must be true or false")
        targets.append(Target(name, _with_credentials(url, user, password), writes))
    names = [t.name for t in targets]
    dupes = sorted({x for x in names if names.count(x) > 1})
    if dupes:
        raise TargetsError(f"{source}: target names must be unique; repeated: {dupes}")
    return targets


def load_targets(
    path: str, *, allow_writes: bool = False, environ: Mapping[str, str] | None = None
) -> list[Target]:
    """Targets from the TOML file at ``path``."""
    data = read_toml(path, "targets file", TargetsError)
    return parse_targets(data, path, allow_writes=allow_writes, environ=environ)
