"""The scan's cluster form on the suite's real Redis Cluster: a page's keys go in ARGV
to the node that returned them (one EVALSHA_RO per page, not one per slot), and a page
the node refuses because a key is not its own (a slot migrating, a primary demoted)
is read again one call per slot, its keys counted as moved, never as vanished."""

from __future__ import annotations

import contextlib

import pytest
import redis
from redis.crc import key_slot

from dashboard import gate
from dashboard.connection import connect
from dashboard.inspect.keyspace.scan import NodeScanner, ScanOptions
from dashboard.inspect.keyspace.scanjob import DONE, scan_keyspace
from dashboard.inspect.nodes import node_client
from dashboard.patterns import scripts


@pytest.fixture
def gated(cluster):
    """The client the dashboard builds from the URL: read-only gate on."""
    client = gate.install(connect(cluster.url), allow_writes=False)
    yield client
    client.close()


def plant(client, n: int) -> list[str]:
    names = [f"{('user', 'cache', 'jobs')[i % 3]}:{i}" for i in range(n)]
    pipe = client.pipeline()
    for i, name in enumerate(names):
        if i % 3 == 0:
            pipe.hset(name, mapping={"a": i})
        elif i % 3 == 1:
            pipe.set(name, "x" * (i % 30), ex=600)
        else:
            pipe.rpush(name, i, i + 1)
    pipe.execute()
    return names


def stats(port: int) -> dict[str, int]:
    with redis.Redis(port=port) as admin:
        commandstats = admin.info("commandstats")
    return {k.removeprefix("cmdstat_"): v["calls"] for k, v in commandstats.items()}


@contextlib.contextmanager
def slowlog_everything(ports):
    """Log every command's arguments on these nodes (config restored afterwards)."""
    for port in ports:
        with redis.Redis(port=port) as admin:
            admin.config_set("slowlog-log-slower-than", 0)
            admin.config_set("slowlog-max-len", 10_000)
            admin.slowlog_reset()
    try:
        yield
    finally:
        for port in ports:
            with redis.Redis(port=port) as admin:
                admin.config_set("slowlog-log-slower-than", 10_000)
                admin.config_set("slowlog-max-len", 128)


def script_calls(port: int) -> list[list[bytes]]:
    """The EVALSHA_RO calls a node logged: [command, sha, numkeys, arguments...]."""
    with redis.Redis(port=port) as admin:
        entries = admin.slowlog_get(10_000)
    calls = [e["command"].split(b" ") for e in entries]
    calls = [c[: c.index(b"...")] if b"..." in c else c for c in calls]  # "... (n more arguments)"
    return [c for c in calls if c[0].upper() == b"EVALSHA_RO"]


def test_a_cluster_page_is_one_script_call_with_its_keys_in_argv(cluster, cluster_client, gated):
    plant(cluster_client, 3000)
    primaries = cluster.primaries()
    ports = [p.port for p in primaries]
    for port in ports:
        with redis.Redis(port=port) as admin:
            admin.config_resetstat()
    pages: list = []
    with slowlog_everything(ports):
        snap = scan_keyspace(gated, ScanOptions(max_count=200), on_batch=pages.append)
        logged = {port: script_calls(port) for port in ports}
    assert snap["state"] == DONE, snap["error"]
    assert snap["result"]["tree"]["keys"] == snap["analysed"] == cluster.dbsize() == 3000
    assert snap["vanished"] == snap["moved"] == 0
    assert not any(b.fallback for b in pages)
    assert all(n["fallbacks"] == 0 and n["path"] == "lua" for n in snap["nodes"])
    with_keys = [b for b in pages if b.scanned - b.skipped]
    for port in ports:
        calls = stats(port)
        # one EVALSHA_RO per page (its first one NOSCRIPT: the suite flushed the scripts,
        # so one EVAL_RO loads it), never one per slot, never a write-capable EVAL
        mine = [b for b in with_keys if b.node == f"127.0.0.1:{port}"]
        assert calls.get("evalsha_ro") == len(mine) and calls.get("eval_ro") == 1
        assert "evalsha" not in calls and "eval" not in calls
        assert sum(b.scanned for b in mine) > 5 * len(mine)  # pages of many keys
        # a page spanning slots declares no key: its keys follow SAMPLES ('') in ARGV;
        # only a page of one slot declares its keys (the slowlog keeps 32 arguments)
        argv_form = 0
        for call in logged[port]:
            numkeys, rest = int(call[2]), [a for a in call[3:] if a]
            slots = {key_slot(k) for k in (rest[:numkeys] if numkeys else rest)}
            assert len(slots) > 1 if not numkeys else len(slots) == 1, call
            argv_form += not numkeys
        assert argv_form > len(mine) / 2


def test_a_key_migrated_under_a_page_falls_back_to_one_call_per_slot(
    cluster, cluster_client, gated
):
    names = plant(cluster_client, 3000)
    source, target = cluster.primaries()[:2]
    address = f"127.0.0.1:{source.port}"
    owned = frozenset(cluster.slots_of(source))
    taken: list[int] = []

    def migrate_first_slot(page: list[bytes]) -> None:
        """Between the page's SCAN and its facts: its first key's slot starts moving
        to ``target`` and every key of that slot goes there."""
        if not taken:
            taken.append(key_slot(page[0]))
            cluster.begin_migration(taken, source, target)
            cluster.move_keys(taken, source, target)

    options = ScanOptions(max_count=100, start_count=100)
    scanner = NodeScanner(
        node_client(gated, address), options, name=address, cluster=True,
        on_keys=migrate_first_slot, slots=owned,
    )  # fmt: skip
    try:
        batch = scanner.next_batch()
    finally:
        cluster.finish_migration(taken, target)
    gone = sum(1 for name in names if key_slot(name.encode()) == taken[0])
    assert batch.scanned > 1 and len({key_slot(f[0]) for f in batch.facts}) > 1
    assert batch.fallback and scanner.state()["fallbacks"] == 1
    assert batch.path == "lua" and scanner.path == "lua"  # no switch to the pipeline path
    assert 1 <= batch.moved <= gone and batch.vanished == 0  # ASK: moved, not vanished
    assert batch.moved + len(batch.facts) == batch.scanned
    assert all(key_slot(f[0]) != taken[0] for f in batch.facts)
    nxt = scanner.next_batch()  # the slot is the target's now: the next pages need no fallback
    assert not nxt.fallback and nxt.moved == 0 and len(nxt.facts) == nxt.scanned - nxt.skipped


def test_a_slot_half_migrated_under_a_page_counts_its_keys_moved(cluster, gated):
    """Several keys of one slot in a page, one of them migrated before the facts: the
    one-call form is refused, the slot form answers TRYAGAIN for that slot's group, and
    its keys count as moved (the walk is redone later), the other slots' keys are read."""
    source = cluster.primaries()[0]
    owned = set(cluster.slots_of(source))
    tags = [t for t in (f"t{i}" for i in range(400)) if key_slot(f"{{{t}}}".encode()) in owned]
    split, others = tags[0], tags[1:21]
    with redis.Redis(port=source.port) as direct:
        for i in range(10):
            direct.set(f"{{{split}}}:{i}", i)
        for tag in others:
            direct.set(f"{{{tag}}}:x", tag)
    slot = key_slot(f"{{{split}}}".encode())
    target = next(n for n in cluster.primaries() if n is not source)

    def migrate_one_key(page: list[bytes]) -> None:
        cluster.begin_migration([slot], source, target)
        with redis.Redis(port=source.port) as direct:
            direct.migrate("127.0.0.1", target.port, f"{{{split}}}:0", 0, 10_000)

    address = f"127.0.0.1:{source.port}"
    scanner = NodeScanner(
        node_client(gated, address), ScanOptions(max_count=100, start_count=100),
        name=address, cluster=True, on_keys=migrate_one_key, slots=frozenset(owned),
    )  # fmt: skip
    try:
        batch = scanner.next_batch()
    finally:
        cluster.move_keys([slot], source, target)
        cluster.finish_migration([slot], target)
    assert scanner.done and batch.scanned == 30 and batch.fallback
    assert (batch.moved, batch.vanished) == (10, 0)
    assert sorted(f[0] for f in batch.facts) == sorted(f"{{{t}}}:x".encode() for t in others)


def test_a_demoted_primary_answers_moved_for_a_whole_page(cluster, cluster_client, gated):
    plant(cluster_client, 3000)
    cluster.sync_replicas()
    victim = cluster.primaries()[2]
    address = f"127.0.0.1:{victim.port}"
    promoted: list = []

    def failover(page: list[bytes]) -> None:
        if not promoted:
            promoted.append(cluster.failover(victim))

    scanner = NodeScanner(
        node_client(gated, address), ScanOptions(max_count=100, start_count=100),
        name=address, cluster=True, on_keys=failover,
        slots=frozenset(cluster.slots_of(victim)),
    )  # fmt: skip
    batch = scanner.next_batch()
    assert promoted and batch.fallback and batch.scanned > 1
    assert batch.moved == batch.scanned and batch.vanished == 0 and not batch.facts
    assert scanner.moved == batch.moved  # the job redoes such a walk on the new primary


def test_the_argv_form_passes_the_gate_and_the_server_refuses_writes(
    cluster, cluster_client, gated
):
    cluster_client.set("k", "v")
    owner = cluster_client.get_node_from_key("k")
    conn = node_client(gated, owner.name)
    body = scripts.load("scan_batch").script
    fields = conn.eval_ro(body, 0, b"", b"k").split(b"\t")  # the read-only gate lets it by
    assert fields[1:3] == [b"string", b"-1"] and fields[4] == b"1"
    with pytest.raises(gate.CommandRefused):
        conn.eval(body, 0, b"", b"k")  # a write-capable EVAL is not for the read-only gate
    writer = "#!lua flags=no-writes,allow-cross-slot-keys\nreturn redis.call('SET', ARGV[1], 'x')"
    with pytest.raises(redis.ResponseError, match="Write commands are not allowed"):
        conn.eval_ro(writer, 0, "k")  # the gate passes EVAL_RO; the server refuses the write
    with redis.Redis(port=owner.port) as direct, pytest.raises(redis.ResponseError, match="Write"):
        direct.eval(writer, 0, "k")  # no-writes holds even for a plain EVAL, ungated
    assert cluster_client.get("k") == b"v"
