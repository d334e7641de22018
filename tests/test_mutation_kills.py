"""Checks written for mutants that survived tests/mutation (docs/testing.md): each pins
a behaviour the other tests passed by. Grouped by module; pure where possible."""

import time

import pytest

from dashboard import deadline, gate
from dashboard.gate import CommandRefused

# --- dashboard/gate.py ----------------------------------------------------------------


@pytest.mark.parametrize("allow_writes", [False, True])
@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (("CONFIG", "SET", "x", "1"), "CONFIG SET"),
        (("FLUSHALL",), "FLUSHALL"),
        (("DEBUG SLEEP", "0"), "DEBUG SLEEP"),  # a subcommand glued on: still DEBUG
        (("KEYS *",), "KEYS *"),
        (("client", "kill", "id", "1"), "CLIENT KILL"),
    ],
)
def test_never_commands_are_refused_with_their_name(args, shown, allow_writes):
    with pytest.raises(CommandRefused) as refused:
        gate.check(args, allow_writes)
    assert str(refused.value) == f"{shown} is never sent by the dashboard"


def test_a_write_in_read_only_mode_says_how_to_allow_it():
    with pytest.raises(CommandRefused) as refused:
        gate.check(("HSET", "k", "f", "v"), allow_writes=False)
    assert str(refused.value) == (
        "read-only mode: HSET is not a read command; start the dashboard with "
        "--allow-writes (REDIS_DASHBOARD_ALLOW_WRITES=1) to enable it"
    )
    gate.check(("HSET", "k", "f", "v"), allow_writes=True)  # passes: no exception
    with pytest.raises(CommandRefused, match=r"^read-only mode: CLIENT NO-EVICT is not"):
        gate.check(("CLIENT", "NO-EVICT", "on"), allow_writes=False)


def test_a_command_past_the_deadline_is_refused_by_name(r, redis_server):
    import redis

    client = gate.install(redis.Redis(port=redis_server.port), allow_writes=False)
    try:
        client.ping()  # connected before the deadline
        with deadline.deadline(0.001):
            time.sleep(0.01)
            with pytest.raises(deadline.DeadlineExceeded, match="DBSIZE was given up"):
                client.dbsize()
            with pytest.raises(deadline.DeadlineExceeded, match=r"; CONFIG GET was given up$"):
                client.config_get("maxmemory")  # a subcommand: named as the docs spell it
        assert client.dbsize() == 0  # no deadline: answered, the socket timeout restored
    finally:
        client.close()


def test_the_socket_timeout_is_capped_under_a_deadline_and_put_back_after(redis_server):
    """A deadline caps the read timeout of the commands sent under it; the first command
    after it gets the configured timeout back (a stale cap would time out a slow read
    that has no deadline at all)."""
    import redis

    client = gate.install(redis.Redis(port=redis_server.port, socket_timeout=7), allow_writes=False)
    try:
        client.ping()
        connection = client.connection_pool.get_connection()
        try:
            assert connection._sock.gettimeout() == 7  # connected, no deadline: as configured
            with deadline.deadline(2):
                connection.send_command("PING")
                assert connection.read_response() == b"PONG"
                assert 0 < connection._sock.gettimeout() <= 2
            connection.send_command("PING")
            assert connection.read_response() == b"PONG"
            assert connection._sock.gettimeout() == 7
        finally:
            client.connection_pool.release(connection)
    finally:
        client.close()


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (("COMMAND",), "COMMAND"),  # a container command with no subcommand
        (("CLUSTER", "INFO"), "CLUSTER|INFO"),  # the subcommand is the last argument
        ((b"memory", b"usage", b"k"), "MEMORY|USAGE"),
        (("Config Get", "maxmemory"), "CONFIG|GET"),
    ],
)
def test_container_commands_are_named_with_their_subcommand(args, name):
    assert gate.command_name(args) == name
    gate.check(args, allow_writes=False)  # all reads: no exception


class _Manager:
    """The part of redis-py's cluster NodesManager the gate touches."""

    def __init__(self, kwargs, nodes):
        self.connection_kwargs = kwargs
        self.nodes_cache = nodes


class _Node:
    def __init__(self, client):
        self.redis_connection = client


class _Cluster:
    def __init__(self, kwargs, nodes=()):
        self.nodes_manager = _Manager(kwargs, {str(i): n for i, n in enumerate(nodes)})


@pytest.mark.parametrize("allow_writes", [False, True])
def test_a_cluster_gets_the_gate_on_its_nodes_and_on_nodes_made_later(
    redis_server, r, allow_writes
):
    """The node clients that exist are gated; the class later nodes connect with is
    gated too, and keeps the connection class the client was given (TLS stays TLS)."""
    import redis

    made = redis.Redis(port=redis_server.port)
    cluster = _Cluster({}, [_Node(made), _Node(None)])  # None: a node not connected yet
    gate.install(cluster, allow_writes)
    later = cluster.nodes_manager.connection_kwargs["connection_class"]
    assert issubclass(later, redis.Connection)
    for client in (
        made,
        redis.Redis(
            connection_pool=redis.ConnectionPool(connection_class=later, port=redis_server.port)
        ),
    ):
        if allow_writes:
            client.set("gated:w", 1)
            assert r.get("gated:w") == b"1"
        else:
            with pytest.raises(CommandRefused, match="read-only mode: SET"):
                client.set("gated:w", 1)
            assert r.exists("gated:w") == 0
        r.delete("gated:w")
        client.close()
    tls = _Cluster({"connection_class": redis.SSLConnection})
    gate.install(tls, allow_writes)
    assert issubclass(tls.nodes_manager.connection_kwargs["connection_class"], redis.SSLConnection)


def test_installing_the_gate_twice_does_not_stack_a_second_one(redis_server):
    """Code that gates a client it was handed (it may be gated already) leaves it as it
    was: one check per command, the policy it had."""
    import redis

    client = gate.install(redis.Redis(port=redis_server.port), allow_writes=False)
    gated = client.connection_pool.connection_class
    assert gated.__bases__ == (redis.Connection,)  # one gate over the plain class
    gate.install(client, allow_writes=False)
    assert client.connection_pool.connection_class is gated
    client.close()


# --- dashboard/web/security.py --------------------------------------------------------


def test_a_refused_csrf_token_is_the_documented_json_error(make_app):
    """A script posting to a JSON twin with a wrong token gets the error body of
    docs/json.md, message and all (not just any 400)."""
    client = make_app().test_client()
    client.get("/")  # a session with a token of its own
    for headers in ({}, {"X-CSRF-Token": "forged"}):
        refused = client.post("/key/action.json", data={"k": "x"}, headers=headers)
        assert refused.status_code == 400
        assert refused.get_json() == {
            "error": "Bad request",
            "message": "missing or wrong CSRF token: reload the page and try again",
        }
