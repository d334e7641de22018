"""One SCAN page's facts from ``lua/scan_batch.lua``, in the form the node allows.

* **KEYS form** (standalone, Sentinel, a cluster page of one slot): one EVALSHA_RO
  with the page's keys declared in KEYS.
* **ARGV form** (a cluster page whose keys span slots): one EVALSHA_RO with no
  declared key and the page's keys in ARGV, sent to the node that returned them
  with SCAN (a node connection, never routed). Redis 7.0 refuses declared keys of
  several slots in one call even with ``allow-cross-slot-keys``, and SCAN returns
  keys in hash-table order, so in the KEYS form a page of n keys costs about n
  calls. The node still checks every key the script touches: one whose slot it
  does not serve (moved away, or migrating with the key already gone; a primary
  demoted by a failover) fails the call with "Script attempted to access a non
  local key in a cluster node", and that page is read again in the slot form.
* **slot form**: one EVALSHA_RO per hash slot, KEYS declared, all in one pipeline
  (still one round trip); a slot that left the node answers MOVED/ASK (TRYAGAIN for
  several keys of a migrating slot, some gone), and its keys are marked moved (never
  "vanished").

Every form runs with EVALSHA_RO (EVAL_RO on NOSCRIPT): the script's ``no-writes``
flag makes the server refuse any write, and the read-only command gate lets it
through. Numbers and why: docs/scan.md ("Cluster"), docs/architecture.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from redis import exceptions as rx

from dashboard.patterns import scripts
from dashboard.pool import borrow

# A key whose slot left the node: no real type name is 6 bytes starting with NUL.
MOVED = b"\x00moved"
# How a node answers the ARGV form when a key is not its own to serve (Redis 7.0's
# words, probed: docs/scan.md): not local (slot moved, migrated key, a demoted primary
# without READONLY), or the cluster is down. The slot form then gets the precise
# MOVED/ASK/TRYAGAIN/CLUSTERDOWN.
NOT_HERE = ("non local key", "cluster is down")
# Replies that say a slot group's keys are not (all) on the node any more: MOVED, ASK,
# and TRYAGAIN (several keys of a migrating slot, some already gone). Its keys count as
# moved, which makes the walk be redone once the slot has settled.
LEFT = (rx.MovedError, rx.AskError, rx.TryAgainError)


@dataclass
class ScriptPage:
    """Asks one node (``conn``) for the facts of a page's keys with scan_batch."""

    conn: Any
    samples: bytes  # MEMORY USAGE SAMPLES, b"" for the server default
    script: scripts.LuaScript = field(default_factory=lambda: scripts.load("scan_batch"))
    fallbacks: int = 0  # ARGV-form pages the node refused and the slot form read again

    def facts(
        self, keys: list[bytes], groups: list[list[int]], after: int | None, count: int
    ) -> tuple[int, list[Any], Any, bool]:
        """``(server_us, flat, next SCAN reply, fell back)`` for ``keys`` grouped by slot
        (one group outside a cluster); flat: type, pttl, bytes, count per key. ``after``:
        a cursor whose SCAN rides in the same round trip (``count`` keys)."""
        if len(groups) > 1:
            return self._argv(keys, groups, after, count)
        return (*self._slots(keys, groups, after, count), False)

    def _argv(
        self, keys: list[bytes], groups: list[list[int]], after: int | None, count: int
    ) -> tuple[int, list[Any], Any, bool]:
        commands: list[tuple[Any, ...]] = [("EVALSHA_RO", self.script.sha, 0, self.samples, *keys)]
        if after is not None:
            commands.append(("SCAN", after, "COUNT", count))
        replies = send(self.conn, commands)
        following = ok(replies[1]) if after is not None else None
        reply = replies[0]
        if isinstance(reply, rx.NoScriptError):  # first call on this node, SCRIPT FLUSH
            try:
                reply = self._load((), (self.samples, *keys))
            except rx.ResponseError as exc:
                reply = exc
        if isinstance(reply, rx.ResponseError) and not_here(reply):
            self.fallbacks += 1
            server_us, flat, _ = self._slots(keys, groups, None, count)
            return server_us, flat, following, True
        server_us, flat = unpack(reply, len(keys))
        return server_us, flat, following, False

    def _slots(
        self, keys: list[bytes], groups: list[list[int]], after: int | None, count: int
    ) -> tuple[int, list[Any], Any]:
        args = [self.samples]
        if len(groups) == 1 and after is None:
            try:
                replies, following = [self.script.call_ro(self.conn, keys, args)], None
            except LEFT as exc:  # the slot left this node
                replies, following = [exc], None
        else:
            replies = self._evalsha_groups(keys, groups, after, count)
            following = ok(replies.pop()) if after is not None else None
            missing = [n for n, reply in enumerate(replies) if isinstance(reply, rx.NoScriptError)]
            if missing:  # first call on this node, SCRIPT FLUSH, failover: EVAL_RO loads it
                first = missing.pop(0)
                group_keys = [keys[i] for i in groups[first]]
                try:
                    replies[first] = self._load(group_keys, args)
                except LEFT as exc:
                    replies[first] = exc
                if missing:
                    again = self._evalsha_groups(keys, [groups[n] for n in missing], None, count)
                    for n, reply in zip(missing, again, strict=True):
                        replies[n] = reply
        parts = [unpack(reply, len(group)) for reply, group in zip(replies, groups, strict=True)]
        server_us = sum(us for us, _ in parts)
        if len(groups) == 1:
            return server_us, parts[0][1], following
        flat: list[Any] = [None] * (4 * len(keys))
        for group, (_, values) in zip(groups, parts, strict=True):
            for n, i in enumerate(group):
                flat[4 * i : 4 * i + 4] = values[4 * n : 4 * n + 4]
        return server_us, flat, following

    def _load(self, keys: Any, args: Any) -> Any:
        """EVAL_RO after a NOSCRIPT reply: runs the call and caches the script there."""
        return self.conn.eval_ro(self.script.script, len(keys), *keys, *args)

    def _evalsha_groups(
        self, keys: list[bytes], groups: list[list[int]], after: int | None, count: int
    ) -> list[Any]:
        """One EVALSHA_RO per slot group (and the next SCAN) in one round trip."""
        sha, samples = self.script.sha, self.samples
        commands: list[tuple[Any, ...]] = [
            ("EVALSHA_RO", sha, len(group), *[keys[i] for i in group], samples) for group in groups
        ]
        if after is not None:
            commands.append(("SCAN", after, "COUNT", count))
        return send(self.conn, commands)


def not_here(exc: BaseException) -> bool:
    """The node refused an ARGV-form call because a key is not its own to serve."""
    text = str(exc).lower()
    return any(marker in text for marker in NOT_HERE)


def send(conn: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
    """A pipeline without redis-py's per-command bookkeeping (it costs more than the
    server's work here): pack through the connection's (gated) packer, write once,
    read the replies raw; an error reply stays in its place."""
    pool = conn.connection_pool
    connection = borrow(pool, "SCAN")
    try:
        connection.send_packed_command(connection.pack_commands(commands))
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(connection.read_response())
            except rx.ResponseError as exc:
                replies.append(exc)
        return replies
    except BaseException:
        connection.disconnect()  # a half-read reply stream cannot be reused
        raise
    finally:
        pool.release(connection)


def unpack(reply: Any, keys: int) -> tuple[int, list[Any]]:
    """``(server_us, flat)`` from one scan_batch reply: a tab-separated string
    (server µs, then type, pttl, bytes, count per key; '' for unknown), or the MOVED/ASK/
    TRYAGAIN error of a group whose slot left the node (its keys are marked moved)."""
    if isinstance(reply, LEFT):  # resharding: left this node
        return 0, [MOVED, None, None, None] * keys
    reply = ok(reply)
    if isinstance(reply, str):  # a client with decode_responses=True
        reply = reply.encode("utf-8", "surrogateescape")
    values: list[Any] = reply.split(b"\t")
    server_us = int(values.pop(0))
    values[1::4] = list(map(int, values[1::4]))
    values[2::4] = [int(v) if v else None for v in values[2::4]]
    values[3::4] = [int(v) if v else None for v in values[3::4]]
    return server_us, values


def ok(reply: Any) -> Any:
    """A pipeline reply, or raise the error it holds."""
    if isinstance(reply, Exception):
        raise reply
    return reply


def group(slots: list[int]) -> list[list[int]]:
    """Positions grouped by cluster hash slot, in order of first appearance."""
    groups: dict[int, list[int]] = {}
    for i, slot in enumerate(slots):
        groups.setdefault(slot, []).append(i)
    return list(groups.values())
