"""One script call on one pooled connection, with the retry decided per script.

Why this exists: a pattern call is one EVALSHA, and redis-py (8.x) spends more time
around it than the server spends running it: every ``execute_command`` borrows a
connection through the pool's observability hooks, wraps the call in a closure for
its retry object and records metrics, and on a lost reply it *resends* the command.
Resending is wrong for a script that is not idempotent (a rate-limit hit would count
twice). So for a plain ``redis.Redis`` / ``redis.asyncio.Redis`` on a standard
connection pool, this module borrows an idle connection straight from the pool's
free list (the same list, lock and limits the pool uses, so ``close()``, the
command gate and ``max_connections`` keep working), sends EVALSHA (EVAL after
NOSCRIPT, on the same connection) and reads one reply. ``retry=True`` retries with
the connection's own retry policy; ``retry=False`` never resends: a lost reply
raises and the connection is dropped.

On asyncio the connection is driven by :mod:`dashboard.patterns.afastcall`
(no Task, packer or timer of redis.asyncio's per command; the socket timeout kept).
A connection the server closed while it sat idle in the pool is replaced before
anything is sent on it (blocking: one zero-timeout poll, as redis-py's pool does;
not over TLS), so even a script that is never resent does not fail for it.
An error reply is read in full, so the connection goes back to the pool; any other
error drops it (a reply may still be on the wire).

Anything else (cluster clients, pipelines, single-connection clients, client-side
caching, fakeredis, blocking pools) takes redis-py's ordinary path: there the
client's own retry policy applies, which is why every script that may run there
either is idempotent or says in its docs what a resend would do.
"""

from __future__ import annotations

import os
import select
import socket
from collections.abc import Callable, Sequence
from typing import Any

import redis
import redis.asyncio
from redis.asyncio.connection import ConnectionPool as AsyncConnectionPool
from redis.connection import ConnectionPool
from redis.exceptions import NoScriptError, ResponseError

from dashboard.patterns.afastcall import hiredis_pack, script_once

_SYNC_POOLS: dict[type, bool | None] = {ConnectionPool: None}
_ASYNC_POOLS: dict[type, bool | None] = {AsyncConnectionPool: None}
try:  # Sentinel pools keep the base class's free list; their connections find the primary
    from redis.asyncio.sentinel import SentinelConnectionPool as _AsyncSentinelPool
    from redis.sentinel import SentinelConnectionPool as _SentinelPool

    _SYNC_POOLS[_SentinelPool] = None
    _ASYNC_POOLS[_AsyncSentinelPool] = None
except ImportError:  # pragma: no cover - every supported redis-py has them
    pass
_HIREDIS_PACKER = getattr(redis.connection, "HiredisRespSerializer", None)
_POOL_ATTRS = ("_available_connections", "_in_use_connections", "_lock")


def _eligible(client: Any, pools: dict[type, bool | None], client_type: type) -> bool:
    if type(client) is not client_type or getattr(client, "connection", None) is not None:
        return False
    pool = getattr(client, "connection_pool", None)
    kind = type(pool)
    if kind not in pools:
        return False
    known = pools[kind]
    if known is None:  # the free-list attributes are checked once per pool class
        known = pools[kind] = all(hasattr(pool, a) for a in _POOL_ATTRS)
    return known and getattr(pool, "cache", None) is None


def fast_sync(client: Any) -> bool:
    """True when :func:`call` may borrow ``client``'s connections directly."""
    return _eligible(client, _SYNC_POOLS, redis.Redis)


def fast_async(client: Any) -> bool:
    """True when :func:`acall` may borrow ``client``'s connections directly."""
    return _eligible(client, _ASYNC_POOLS, redis.asyncio.Redis)


def _replaying(first: Exception, attempt: Callable[[], Any]) -> Callable[[], Any]:
    """``attempt`` for a retry policy whose first try already failed with ``first``:
    the policy sees that error first, so it counts, backs off and gives up exactly
    as if it had made the first try itself (the success path pays no closure)."""
    pending = [first]

    def do() -> Any:
        if pending:
            raise pending.pop()
        return attempt()

    return do


# -- blocking ----------------------------------------------------------------------------
_pid = os.getpid()  # getpid() is a system call; this process's id is kept instead


def _forked() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):  # no fork, no other process id to learn
    os.register_at_fork(after_in_child=_forked)


def _borrow(pool: Any) -> Any:
    if pool.pid != _pid:
        return pool.get_connection()  # after a fork the pool resets itself there
    with pool._lock:
        try:
            conn = pool._available_connections.pop()
        except IndexError:
            conn = None
        else:
            pool._in_use_connections.add(conn)
    if conn is None:
        return pool.get_connection()
    _check_idle(conn)
    return conn


def _check_idle(conn: Any) -> None:
    """Drop a pooled connection the server closed (or left data on) while it sat idle,
    as redis-py's own pool does: one zero-timeout poll, so a script that is never
    resent is not lost on a dead socket."""
    sock = getattr(conn, "_sock", None)
    if type(sock) is not socket.socket:
        return  # not connected yet (the send connects), or TLS (its own records are readable)
    fd = sock.fileno()
    if fd < 0:
        return
    if fd < 1024:
        readable = select.select((fd,), (), (), 0)[0]
    else:  # past select()'s limit
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        readable = poller.poll(0)
    if readable:
        conn.disconnect()  # closed or not in step: the next send connects afresh


def _give_back(pool: Any, conn: Any) -> None:
    should_reconnect = getattr(conn, "should_reconnect", None)
    with pool._lock:
        try:
            pool._in_use_connections.remove(conn)
        except KeyError:
            return
        if not pool.owns_connection(conn):  # a Sentinel failover or a fork moved on
            conn.disconnect()
            return
        if should_reconnect is not None and should_reconnect():
            conn.disconnect()
        pool._available_connections.append(conn)


def _send(conn: Any, command: tuple[Any, ...]) -> None:
    packer = type(getattr(conn, "_command_packer", None))
    if packer is _HIREDIS_PACKER and hiredis_pack is not None:  # what that packer calls
        conn.send_packed_command((hiredis_pack(command),))
    else:  # another packer (e.g. the dashboard's command gate): it sees every command
        conn.send_command(*command)


def _once(conn: Any, script: Any, keys: Sequence[Any], args: Sequence[Any]) -> Any:
    _send(conn, ("EVALSHA", script.sha, len(keys), *keys, *args))
    try:
        return conn.read_response()
    except NoScriptError:
        _send(conn, ("EVAL", script.script, len(keys), *keys, *args))
        return conn.read_response()


def call(client: Any, script: Any, keys: Sequence[Any], args: Sequence[Any], retry: bool) -> Any:
    """Run ``script`` on a plain ``redis.Redis`` (see :func:`fast_sync`)."""
    pool = client.connection_pool
    conn = _borrow(pool)
    try:
        try:
            return _once(conn, script, keys, args)
        except ResponseError:
            raise  # an error reply, read in full: the connection is clean
        except Exception as first:
            if not retry:
                raise
            conn.disconnect()
            again = _replaying(first, lambda: _once(conn, script, keys, args))
            return conn.retry.call_with_retry(again, lambda _error: conn.disconnect())
    except ResponseError:
        raise
    except BaseException:
        conn.disconnect()  # a reply may still be on the wire: never reuse this socket as is
        raise
    finally:
        _give_back(pool, conn)


# -- asyncio -----------------------------------------------------------------------------
def _agive_back(pool: Any, conn: Any) -> None:
    try:
        pool._in_use_connections.remove(conn)
    except KeyError:
        return
    pool._available_connections.append(conn)


async def acall(
    client: Any, script: Any, keys: Sequence[Any], args: Sequence[Any], retry: bool
) -> Any:
    """Run ``script`` on a plain ``redis.asyncio.Redis`` (see :func:`fast_async`).

    A task cancelled while waiting for the reply drops the connection (its reply
    would otherwise be read by the next borrower).
    """
    pool = client.connection_pool
    try:
        conn = pool._available_connections.pop()  # no await in between: atomic on the loop
    except IndexError:
        conn = await pool.get_connection()
    else:
        pool._in_use_connections.add(conn)
    try:
        try:
            return await script_once(conn, script, keys, args)
        except ResponseError:
            raise
        except Exception as first:
            if not retry:
                raise
            await conn.disconnect(nowait=True)

            async def fail(_error: BaseException) -> None:
                await conn.disconnect(nowait=True)

            again = _replaying(first, lambda: script_once(conn, script, keys, args))
            return await conn.retry.call_with_retry(again, fail)
    except ResponseError:
        raise
    except BaseException:
        await conn.disconnect(nowait=True)
        raise
    finally:
        _agive_back(pool, conn)
