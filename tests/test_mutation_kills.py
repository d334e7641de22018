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
        assert client.dbsize() == 0  # no deadline: answered, the socket timeout restored
    finally:
        client.close()
