"""Lua loader: one script a file in ``lua/``, each with a contract header.

Every script starts with comment lines that state its contract::

    -- KEYS[1] the counter key
    -- ARGV[1] limit
    -- returns {count, pttl}

The header is parsed and enforced: a call with the wrong number of keys is
refused before it reaches Redis. Sources are read and hashed once per process
and run with EVALSHA; a NOSCRIPT reply (after SCRIPT FLUSH, a restart or a
failover) is answered with EVAL, which also caches the script on that server.
Inside a redis-py pipeline the pipeline checks SCRIPT EXISTS once before it
sends the batch; a cluster pipeline, which cannot do that, sends EVAL.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio.client import Pipeline as AsyncPipeline
from redis.client import Pipeline
from redis.exceptions import NoScriptError

from dashboard.patterns import fastcall
from dashboard.resources import resource_dir

_KEY_LINE = re.compile(r"^--\s*KEYS\[(\d+)\]\s*(.*)$")
_VARIADIC_LINE = re.compile(r"^--\s*KEYS\[1\.\.n\]\s*(.*)$")
_ARG_LINE = re.compile(r"^--\s*ARGV\[(\d+)\]\s*(.*)$")
_RETURNS_LINE = re.compile(r"^--\s*returns?\b\s*(.*)$", re.IGNORECASE)


class ScriptContractError(ValueError):
    """A script file without a valid header, or a call that breaks its contract."""


@dataclass(eq=False)
class LuaScript:
    """A loaded script: its source, SHA1 and declared KEYS/ARGV/return contract."""

    name: str
    script: bytes
    keys: list[str]
    argv: list[str]
    returns: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        self.sha = hashlib.sha1(self.script, usedforsecurity=False).hexdigest()

    def __hash__(self) -> int:  # redis-py keeps pipeline scripts in a set
        return hash(self.name)

    def __call__(self, client: Any, keys: Sequence[Any], args: Iterable[Any] = ()) -> Any:
        """Run on ``client`` (a Redis, RedisCluster or a pipeline of either)."""
        self._check_keys(keys)
        argv = tuple(args)
        if isinstance(client, Pipeline | AsyncPipeline):
            client.scripts.add(self)
            return client.evalsha(self.sha, len(keys), *keys, *argv)
        if _is_cluster_pipeline(client):
            return client.eval(self.script, len(keys), *keys, *argv)
        try:
            return client.evalsha(self.sha, len(keys), *keys, *argv)
        except NoScriptError:
            return client.eval(self.script, len(keys), *keys, *argv)

    call = __call__

    def run(self, client: Any, keys: Sequence[Any], args: Sequence[Any], retry: bool) -> Any:
        """Like a call, with the resend decided here: ``retry=False`` for a script that
        must not run twice (see :mod:`dashboard.patterns.fastcall`)."""
        if fastcall.fast_sync(client):
            self._check_keys(keys)
            return fastcall.call(client, self, keys, args, retry)
        return self(client, keys, args)

    async def arun(self, client: Any, keys: Sequence[Any], args: Sequence[Any], retry: bool) -> Any:
        """:meth:`run` on a ``redis.asyncio`` client (EVALSHA, EVAL on NOSCRIPT)."""
        self._check_keys(keys)
        if fastcall.fast_async(client):
            return await fastcall.acall(client, self, keys, args, retry)
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.script, len(keys), *keys, *args)

    async def acall_ro(self, client: Any, keys: Sequence[Any], args: Iterable[Any] = ()) -> Any:
        """:meth:`call_ro` on a ``redis.asyncio`` client."""
        self._check_keys(keys)
        argv = tuple(args)
        try:
            return await client.evalsha_ro(self.sha, len(keys), *keys, *argv)
        except NoScriptError:
            return await client.eval_ro(self.script, len(keys), *keys, *argv)

    def call_ro(self, client: Any, keys: Sequence[Any], args: Iterable[Any] = ()) -> Any:
        """Run a read-only script with EVALSHA_RO (EVAL_RO on NOSCRIPT).

        The server itself refuses any write from such a call, it may run on a
        replica, and the dashboard's read-only command gate lets it through. The
        script must declare ``#!lua flags=no-writes`` on its first line. Redis < 7
        answers with an unknown-command error, which callers treat as "no Lua".
        """
        self._check_keys(keys)
        argv = tuple(args)
        try:
            return client.evalsha_ro(self.sha, len(keys), *keys, *argv)
        except NoScriptError:
            return client.eval_ro(self.script, len(keys), *keys, *argv)

    def _check_keys(self, keys: Sequence[Any]) -> None:
        if self.keys_declared_variadic:
            return
        if len(keys) != len(self.keys):
            raise ScriptContractError(
                f"lua/{self.name}.lua takes {len(self.keys)} key(s), got {len(keys)}"
            )

    @property
    def keys_declared_variadic(self) -> bool:
        """A header line ``-- KEYS[1..n] ...`` declares a script taking any number of keys."""
        return self.keys == [VARIADIC]


VARIADIC = "..."


def _is_cluster_pipeline(client: Any) -> bool:
    return type(client).__name__ == "ClusterPipeline"


def parse_header(name: str, source: str) -> tuple[list[str], list[str], str]:
    """Read the leading comment block: KEYS[n] and ARGV[n] lines and a returns line."""
    keys: dict[int, str] = {}
    argv: dict[int, str] = {}
    returns = ""
    variadic = False
    for line in source.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#!"):
            continue  # blank lines and a Redis 7 shebang (#!lua flags=...) precede the header
        if not stripped.startswith("--"):
            break
        if _VARIADIC_LINE.match(stripped):
            variadic = True
        elif m := _KEY_LINE.match(stripped):
            keys[int(m.group(1))] = m.group(2).strip()
        elif m := _ARG_LINE.match(stripped):
            argv[int(m.group(1))] = m.group(2).strip()
        elif m := _RETURNS_LINE.match(stripped):
            returns = m.group(1).strip()
    for label, found in (("KEYS", keys), ("ARGV", argv)):
        if sorted(found) != list(range(1, len(found) + 1)):
            raise ScriptContractError(f"lua/{name}.lua: {label} lines are not numbered 1..n")
    if not returns:
        raise ScriptContractError(f"lua/{name}.lua: header has no '-- returns' line")
    if variadic:
        if keys:
            raise ScriptContractError(f"lua/{name}.lua: KEYS[1..n] excludes numbered KEYS lines")
        return [VARIADIC], [argv[i] for i in sorted(argv)], returns
    return [keys[i] for i in sorted(keys)], [argv[i] for i in sorted(argv)], returns


_cache: dict[str, LuaScript] = {}
_lock = threading.Lock()


def load(name: str) -> LuaScript:
    """Return the script ``lua/<name>.lua``, reading and hashing it once per process."""
    script = _cache.get(name)
    if script is not None:
        return script
    with _lock:
        if name not in _cache:
            path = resource_dir("lua") / f"{name}.lua"
            if not path.is_file():
                raise FileNotFoundError(f"no Lua script named {name!r} at {path}")
            source = path.read_text(encoding="utf-8")
            keys, argv, returns = parse_header(name, source)
            _cache[name] = LuaScript(name, source.encode("utf-8"), keys, argv, returns)
        return _cache[name]


def available() -> list[str]:
    """Names of every script shipped in ``lua/``."""
    return sorted(p.stem for p in resource_dir("lua").glob("*.lua"))
