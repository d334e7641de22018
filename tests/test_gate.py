import pytest
import redis

from dashboard import gate
from dashboard.connection import connect


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (("GET", "k"), "GET"),
        (("CONFIG GET", "maxmemory"), "CONFIG|GET"),
        ((b"config", b"set", b"x", b"1"), "CONFIG|SET"),
        (("MEMORY USAGE", "k"), "MEMORY|USAGE"),
        ((), ""),
    ],
)
def test_command_name(args, name):
    assert gate.command_name(args) == name


def test_read_only_refuses_writes_before_sending(redis_server, r):
    client = gate.install(connect(redis_server.url), allow_writes=False)
    r.set("k", "v")
    calls_before = _calls(r, "cmdstat_del")
    assert client.get("k") == b"v"
    with pytest.raises(gate.CommandRefused, match="read-only mode: DEL"):
        client.delete("k")
    with pytest.raises(gate.CommandRefused, match="--allow-writes"):
        client.set("k", "other")
    with pytest.raises(gate.CommandRefused, match="EVALSHA"):
        client.evalsha("0" * 40, 0)
    # The refusal happened client-side: the server never saw a DEL.
    assert _calls(r, "cmdstat_del") == calls_before
    assert r.get("k") == b"v"


def test_read_only_refuses_inside_pipelines(redis_server, r):
    client = gate.install(connect(redis_server.url), allow_writes=False)
    with client.pipeline() as pipe:
        pipe.get("a")
        pipe.set("a", 1)
        with pytest.raises(gate.CommandRefused):
            pipe.execute()
    assert r.exists("a") == 0


def test_unknown_commands_are_refused_in_read_only(redis_server):
    client = gate.install(connect(redis_server.url), allow_writes=False)
    with pytest.raises(gate.CommandRefused):
        client.execute_command("SOMEMODULE.WRITE", "k")


def test_writes_allowed_when_enabled_but_never_keys_or_flush(redis_server, r):
    client = gate.install(connect(redis_server.url), allow_writes=True)
    client.set("w", 1)
    assert r.get("w") == b"1"
    never = (
        ("KEYS", "*"),
        ("FLUSHALL",),
        ("FLUSHDB",),
        ("CONFIG", "SET", "x", "1"),
        ("CLIENT", "KILL", "TYPE", "normal"),
        ("CLIENT", "PAUSE", "1000"),
        ("MODULE", "LOAD", "/tmp/x.so"),
        ("SAVE",),
    )
    for command in never:
        with pytest.raises(gate.CommandRefused, match="never sent"):
            client.execute_command(*command)
    assert r.get("w") == b"1"


def test_read_only_client_can_still_read_everything_needed(redis_server, r):
    r.hset("h", "f", "v")
    client = gate.install(connect(redis_server.url), allow_writes=False)
    assert client.info("server")["redis_version"]
    assert client.config_get("maxmemory")
    assert client.hscan("h") == (0, {b"f": b"v"})
    assert client.eval_ro("return redis.call('TYPE', KEYS[1])['ok']", 1, "h") == b"hash"
    pubsub = client.pubsub()
    pubsub.subscribe("chan")
    pubsub.close()


def _calls(client: redis.Redis, stat: str) -> int:
    return client.info("commandstats").get(stat, {}).get("calls", 0)
