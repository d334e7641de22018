"""The one command gate: every command the dashboard sends to the inspected Redis
passes through here.

It sits in the connection's command serializer, below pipelines, scripts and
pub/sub, so nothing can go around it. In read-only mode (the default) only
commands on an allowlist of reads pass; anything else, including commands this
module has never heard of, is refused before a byte is sent. With writes enabled
every command passes except the few the dashboard must never send (they block or
wipe a server: KEYS, FLUSHALL, FLUSHDB, SHUTDOWN, DEBUG, MONITOR, ...).
"""

from __future__ import annotations

import weakref
from functools import cache
from typing import Any

from redis.exceptions import RedisError

from dashboard import deadline

# Reads the dashboard needs, as "COMMAND" or "COMMAND SUBCOMMAND".
READ_COMMANDS = frozenset(
    """
    AUTH HELLO PING ECHO SELECT QUIT RESET READONLY CLIENT|SETNAME CLIENT|GETNAME CLIENT|ID
    CLIENT|INFO CLIENT|LIST CLIENT|SETINFO CLIENT|MAINT_NOTIFICATIONS
    INFO DBSIZE TIME LASTSAVE ROLE LOLWUT
    CONFIG|GET SLOWLOG|GET SLOWLOG|LEN LATENCY|LATEST LATENCY|HISTORY LATENCY|DOCTOR
    MEMORY|USAGE MEMORY|STATS MEMORY|DOCTOR MEMORY|MALLOC-STATS
    OBJECT|ENCODING OBJECT|IDLETIME OBJECT|FREQ OBJECT|REFCOUNT
    COMMAND COMMAND|COUNT COMMAND|INFO COMMAND|DOCS COMMAND|LIST
    ACL|WHOAMI ACL|LIST ACL|USERS ACL|GETUSER ACL|CAT ACL|LOG
    MODULE|LIST FUNCTION|LIST SCRIPT|EXISTS EVAL_RO EVALSHA_RO FCALL_RO
    CLUSTER|INFO CLUSTER|NODES CLUSTER|SLOTS CLUSTER|SHARDS CLUSTER|MYID CLUSTER|KEYSLOT
    CLUSTER|COUNTKEYSINSLOT
    SENTINEL|MASTERS SENTINEL|MASTER SENTINEL|REPLICAS SENTINEL|SLAVES
    SENTINEL|GET-MASTER-ADDR-BY-NAME SENTINEL|SENTINELS
    SCAN TYPE EXISTS TTL PTTL EXPIRETIME PEXPIRETIME RANDOMKEY
    GET STRLEN GETRANGE MGET GETBIT BITCOUNT BITPOS SUBSTR
    HLEN HSCAN HGET HMGET HEXISTS HSTRLEN HKEYS HVALS HGETALL HRANDFIELD
    LLEN LRANGE LINDEX LPOS
    SCARD SSCAN SISMEMBER SMISMEMBER SRANDMEMBER SMEMBERS SINTERCARD
    ZCARD ZSCAN ZRANGE ZREVRANGE ZRANGEBYSCORE ZREVRANGEBYSCORE ZRANGEBYLEX ZCOUNT ZLEXCOUNT
    ZSCORE ZMSCORE ZRANK ZREVRANK ZRANDMEMBER
    XLEN XRANGE XREVRANGE XPENDING XINFO|STREAM XINFO|GROUPS XINFO|CONSUMERS XREAD
    PFCOUNT
    PUBSUB|CHANNELS PUBSUB|NUMSUB PUBSUB|NUMPAT PUBSUB|SHARDCHANNELS PUBSUB|SHARDNUMSUB
    SUBSCRIBE PSUBSCRIBE SSUBSCRIBE UNSUBSCRIBE PUNSUBSCRIBE SUNSUBSCRIBE
    """.split()
)

# Never sent, even with writes enabled: they block or wipe a server.
NEVER_COMMANDS = frozenset(
    """
    KEYS FLUSHALL FLUSHDB SHUTDOWN DEBUG MONITOR SWAPDB REPLICAOF SLAVEOF FAILOVER
    SYNC PSYNC MIGRATE CONFIG|SET CONFIG|REWRITE CONFIG|RESETSTAT SCRIPT|FLUSH
    FUNCTION|FLUSH CLUSTER|RESET CLUSTER|FAILOVER CLUSTER|FORGET ACL|SETUSER ACL|DELUSER
    ACL|LOAD ACL|SAVE MODULE|LOAD MODULE|LOADEX MODULE|UNLOAD SAVE BGSAVE BGREWRITEAOF
    CLIENT|KILL CLIENT|PAUSE SCRIPT|KILL FUNCTION|KILL FUNCTION|RESTORE
    """.split()
)

_CONTAINERS = frozenset(
    "CLIENT CONFIG SLOWLOG LATENCY MEMORY OBJECT COMMAND ACL MODULE FUNCTION SCRIPT "
    "CLUSTER SENTINEL XINFO PUBSUB".split()
)


class CommandRefused(RedisError):
    """The gate refused a command; the message says which and how to allow it."""


def command_name(args: tuple[Any, ...]) -> str:
    """``('CONFIG', 'GET', 'x')`` -> ``'CONFIG|GET'``; ``('GET', 'k')`` -> ``'GET'``."""
    if not args:
        return ""
    first = _text(args[0]).upper()
    parts = first.split()
    if len(parts) > 1:  # redis-py sends "CONFIG GET" as one argument
        return f"{parts[0]}|{parts[1]}"
    if first in _CONTAINERS and len(args) > 1:
        return f"{first}|{_text(args[1]).upper()}"
    return first


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


def check(args: tuple[Any, ...], allow_writes: bool) -> None:
    """Raise :class:`CommandRefused` unless the policy lets ``args`` through."""
    name = command_name(args)
    if name in NEVER_COMMANDS or name.split("|")[0] in NEVER_COMMANDS:
        raise CommandRefused(f"{name.replace('|', ' ')} is never sent by the dashboard")
    if allow_writes or name in READ_COMMANDS:
        return
    raise CommandRefused(
        f"read-only mode: {name.replace('|', ' ')} is not a read command; start the "
        "dashboard with --allow-writes (REDIS_DASHBOARD_ALLOW_WRITES=1) to enable it"
    )


class _GatedPacker:
    """Wraps redis-py's command serializer: every command, single or pipelined, is
    serialized by ``pack`` on its way to the socket, so this is the narrowest door.

    It is also where the request's deadline (:mod:`dashboard.deadline`) is enforced: a
    command is refused once the deadline passed, and the socket's read timeout is
    capped to the time left (then put back for the next command without one).
    """

    def __init__(self, inner: Any, allow_writes: bool, connection: Any = None) -> None:
        self._inner = inner
        self._allow_writes = allow_writes
        self._connection = None if connection is None else weakref.ref(connection)
        self._capped = False

    def pack(self, *args: Any) -> Any:
        check(args, self._allow_writes)
        self._bound(args)
        return self._inner.pack(*args)

    def _bound(self, args: tuple[Any, ...]) -> None:
        left = deadline.remaining()
        if left is None and not self._capped:
            return  # the common case: no deadline, nothing to undo
        if left is not None and left <= 0:
            deadline.check(command_name(args).replace("|", " "))
        connection = self._connection() if self._connection else None
        sock = getattr(connection, "_sock", None)
        if sock is None:
            return
        sock.settimeout(deadline.capped(connection.socket_timeout, left))
        self._capped = left is not None


@cache
def guarded(connection_class: type, allow_writes: bool) -> type:
    """A subclass of ``connection_class`` whose serializer checks every command."""

    def _construct_command_packer(self: Any, packer: Any) -> Any:
        inner = super(cls, self)._construct_command_packer(packer)
        return _GatedPacker(inner, allow_writes, self)

    def connect(self: Any, *args: Any, **kwargs: Any) -> Any:
        """Connect within the request's deadline (the connect timeout capped to it)."""
        left = deadline.remaining()
        if left is None or getattr(self, "_sock", None) is not None:
            return super(cls, self).connect(*args, **kwargs)
        deadline.check("connecting")
        saved = self.socket_connect_timeout
        self.socket_connect_timeout = deadline.capped(saved, left)
        try:
            return super(cls, self).connect(*args, **kwargs)
        finally:
            self.socket_connect_timeout = saved

    mode = "ReadWrite" if allow_writes else "ReadOnly"
    attrs = {"_gated": True, "_allow_writes": allow_writes}  # nodes.pinned_client reads it
    cls = type(f"{mode}{connection_class.__name__}", (connection_class,), attrs)
    cls._construct_command_packer = _construct_command_packer
    cls.connect = connect
    return cls


def install(client: Any, allow_writes: bool) -> Any:
    """Put the gate on every connection ``client`` makes (standalone, sentinel, cluster)."""
    pools = []
    if hasattr(client, "connection_pool"):
        pools.append(client.connection_pool)
    if hasattr(client, "nodes_manager"):  # RedisCluster: one pool per node, made lazily
        manager = client.nodes_manager
        manager.connection_kwargs["connection_class"] = guarded(
            manager.connection_kwargs.get("connection_class") or _default_class(), allow_writes
        )
        for node in manager.nodes_cache.values():
            if node.redis_connection is not None:
                pools.append(node.redis_connection.connection_pool)
    for pool in pools:
        if not getattr(pool.connection_class, "_gated", False):
            pool.connection_class = guarded(pool.connection_class, allow_writes)
        pool.disconnect()  # connections made before the gate are dropped
    return client


def _default_class() -> type:
    from redis.connection import Connection

    return Connection
