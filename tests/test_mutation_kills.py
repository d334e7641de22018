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
