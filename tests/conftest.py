"""Test harness: a private redis-server for the session, a clean database per test.

The server is started by the suite itself on a free port (temp dir, no
persistence) and stopped at the end; it is never a server that happened to be
running. Each test gets db 0 of that server flushed before it runs, so tests own
their data. In CI (CI=true) a missing redis-server fails the run instead of
skipping the tests that need it.
"""

from __future__ import annotations

import warnings

import fakeredis
import pytest
import redis

from dashboard.embedded import EmbeddedRedis, RedisServerNotFound, in_ci


def _started(factory):
    """Start what ``factory()`` makes; skip without redis-server (fail in CI)."""
    try:
        return factory().start()
    except RedisServerNotFound as exc:
        if in_ci():
            pytest.fail(f"CI needs redis-server: {exc}", pytrace=False)
        pytest.skip(str(exc))


@pytest.fixture(scope="session", autouse=True)
def _state_home(tmp_path_factory):
    """History state files (docs/history.md) go to a temporary XDG state home, never to
    the user's ~/.local/state; ``serve`` subprocesses inherit it."""
    import os

    old = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state-home"))
    yield
    if old is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = old


def _start_server(extra_args: tuple[str, ...] = ()) -> EmbeddedRedis:
    return _started(lambda: EmbeddedRedis(extra_args=extra_args))


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


# --- web -----------------------------------------------------------------------------


@pytest.fixture
def make_app(redis_server):
    """Build a dashboard app against the suite's server (or any settings given)."""
    from dashboard.web import create_app

    apps = []

    def make(**settings):
        settings.setdefault("url", redis_server.url)
        app = create_app(settings)
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield make
    for app in apps:  # stop each app's observer (its threads read Redis)
        app.extensions["redis_dashboard"].close()


@pytest.fixture
def web(make_app, r):
    """A Flask test client on a read-only dashboard over a clean database."""
    return make_app().test_client()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture
def live_server(redis_server):
    """``redis-dashboard serve`` as a real process (gunicorn), on a free port.

    Returns a function: ``start(**settings) -> base_url``; stopped at test end.
    """
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    from dashboard.embedded import free_port

    started: list[subprocess.Popen] = []

    def start(**settings) -> str:
        port = free_port()
        args = [sys.executable, "-m", "dashboard.cli", "serve", "--port", str(port)]
        settings.setdefault("url", redis_server.url)
        for name, value in settings.items():
            flag = "--" + name.replace("_", "-")
            if value is True:
                args.append(flag)
            elif value is not False:
                args += [flag, str(value)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_DASHBOARD_")}
        proc = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True)
        started.append(proc)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited: {proc.stderr.read()}")
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1).read()
                return base
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("serve did not answer /healthz in time")

    start.started = started  # the processes, for tests that restart the dashboard
    yield start
    for proc in started:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright (no browser download)."""
    import os

    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        if in_ci():
            pytest.fail(f"CI needs {CHROMIUM} (apt-get install chromium)", pytrace=False)
        pytest.skip(f"{CHROMIUM} not installed")
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    """A fresh browser page that records any dialog (alert) and console error."""
    context = browser.new_context()
    pg = context.new_page()
    pg.dialogs = []
    pg.errors = []
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    yield pg
    context.close()


# --- a real Redis Cluster and a real Sentinel set (started on first use) --------------


@pytest.fixture(scope="session")
def redis_cluster_session():
    """The suite's own 3-primary/3-replica Redis Cluster, started when a test first asks.

    Tests use ``cluster`` (healed and emptied for each test) rather than this one.
    """
    from dashboard.embedded_cluster import EmbeddedCluster

    cluster = _started(EmbeddedCluster)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster(redis_cluster_session):
    """The real cluster, whole again (crashed nodes restarted, no slot left migrating)
    and empty. Tests may kill nodes, fail over or move slots: the next test heals it."""
    try:
        redis_cluster_session.heal()
    except TimeoutError as exc:  # one test's damage must not fail every later one
        story = redis_cluster_session.describe()
        warnings.warn(f"the test cluster did not heal ({exc}; {story}); formed anew", stacklevel=1)
        redis_cluster_session.rebuild()
    redis_cluster_session.flush()
    return redis_cluster_session


@pytest.fixture
def cluster_client(cluster):
    """A plain redis-py RedisCluster client on ``cluster`` (for planting data)."""
    client = cluster.client()
    yield client
    client.close()


@pytest.fixture(scope="session")
def redis_sentinel_session():
    """The suite's own Sentinel set: a primary, a replica and 3 Sentinels (started lazily)."""
    from dashboard.embedded_sentinel import EmbeddedSentinel

    sentinel = _started(EmbeddedSentinel)
    try:
        yield sentinel
    finally:
        sentinel.stop()


@pytest.fixture
def sentinel_set(redis_sentinel_session):
    """The real Sentinel set, healed and with an empty primary."""
    redis_sentinel_session.heal()
    redis_sentinel_session.flush()
    return redis_sentinel_session
