"""Test harness: a private redis-server for the session, a clean database per test.

The server is started by the suite itself on a free port (temp dir, no
persistence) and stopped at the end; it is never a server that happened to be
running. Each test gets db 0 of that server flushed before it runs, so tests own
their data. In CI (CI=true) a missing redis-server fails the run instead of
skipping the tests that need it.
"""

from __future__ import annotations

import fakeredis
import pytest
import redis

from dashboard.embedded import EmbeddedRedis, RedisServerNotFound, in_ci


def _start_server(extra_args: tuple[str, ...] = ()) -> EmbeddedRedis:
    try:
        return EmbeddedRedis(extra_args=extra_args).start()
    except RedisServerNotFound as exc:
        if in_ci():
            pytest.fail(f"CI needs redis-server: {exc}", pytrace=False)
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def redis_server():
    """The suite's own redis-server (session-wide)."""
    server = _start_server()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    return redis_server.url


@pytest.fixture
def r(redis_server):
    """A client on a database this suite created and flushes before each test."""
    client = redis.Redis(port=redis_server.port, socket_timeout=10)
    client.flushall()
    client.script_flush()
    yield client
    client.close()


@pytest.fixture
def make_client(redis_server):
    """Extra clients to the same server (for threads and 'other processes')."""
    clients: list[redis.Redis] = []

    def make(**kwargs) -> redis.Redis:
        client = redis.Redis(port=redis_server.port, socket_timeout=10, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def private_server():
    """A server of the test's own, for tests that change config, ACLs or kill clients."""
    factory_started: list[EmbeddedRedis] = []

    def start(*extra_args: str) -> EmbeddedRedis:
        server = _start_server(tuple(extra_args))
        factory_started.append(server)
        return server

    yield start
    for server in factory_started:
        server.stop()


@pytest.fixture
def fake():
    """fakeredis (with Lua) for pure-logic tests; it has no INFO, MEMORY, OBJECT, CONFIG."""
    client = fakeredis.FakeRedis()
    yield client
    client.close()
