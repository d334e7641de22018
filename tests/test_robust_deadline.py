"""A stalled Redis (CLIENT PAUSE) costs one request its deadline, not the sum of its
commands' timeouts; a full connection pool is the dashboard being busy, not Redis down.

No timing assertions: the socket timeout is set far above the deadline and each test
has a pytest timeout below what the per-command timeouts would add up to, so a missing
deadline shows up as a failed (timed-out) test, and the answers are checked by content.
"""

from __future__ import annotations

import threading

import pytest
import redis

from dashboard import deadline
from dashboard.embedded import free_port
from dashboard.keyid import encode_key
from dashboard.pool import DashboardPool, PoolExhausted
from tests.test_robust_cli import run_cli

SLOW = {"socket_timeout": 40, "request_timeout": 1}  # one stalled command alone: 40 s


@pytest.fixture
def stalled(private_server):
    """A server with a key and a stream, then paused for every client for 60 s."""
    server = private_server()
    admin = redis.Redis(port=server.port)
    admin.set("k", "v")
    admin.xadd("orders", {"n": 1})

    def pause() -> None:
        admin.execute_command("CLIENT", "PAUSE", "60000", "ALL")

    yield server, pause
    admin.close()


@pytest.mark.timeout(30)
def test_key_page_under_a_stall_says_redis_is_not_answering(stalled, make_app):
    server, pause = stalled
    web = make_app(url=server.url, **SLOW).test_client()
    assert web.get("/key.json", query_string={"k": encode_key(b"k")}).status_code == 200
    pause()
    reply = web.get("/key.json", query_string={"k": encode_key(b"k")})
    assert reply.status_code == 503
    assert reply.get_json()["error"] == "Redis is not answering"
    page = web.get("/key", query_string={"k": encode_key(b"k")})
    assert page.status_code == 503 and "Redis is not answering" in page.get_data(as_text=True)


@pytest.mark.timeout(30)
def test_overview_under_a_stall_shows_what_it_has_and_why(stalled, make_app):
    server, pause = stalled
    web = make_app(url=server.url, **SLOW).test_client()
    pause()
    reply = web.get("/overview.json")
    body = reply.get_json()
    text = body.get("error") or " ".join(
        str(p.get("reason")) for p in body.values() if isinstance(p, dict)
    )
    assert "Redis is not answering" in text, body


@pytest.mark.timeout(30)
def test_stream_page_and_healthz_under_a_stall(stalled, make_app):
    server, pause = stalled
    web = make_app(url=server.url, **SLOW).test_client()
    assert web.get("/healthz").get_json()["redis"] == "ok"
    pause()
    assert web.get("/healthz").get_json() == {"status": "ok", "redis": "unreachable"}
    reply = web.get("/stream.json", query_string={"k": encode_key(b"orders")})
    assert reply.status_code == 503
    assert "Redis is not answering" in reply.get_data(as_text=True)


@pytest.mark.timeout(60)
def test_cli_under_a_stall_exits_2_in_one_line(stalled):
    server, pause = stalled
    pause()
    done = run_cli(
        "keyspace", "--url", server.url, "--socket-timeout", "40", "--request-timeout", "1"
    )
    assert done.returncode == 2, done.stderr
    assert "Redis is not answering" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_deadlines_nest_and_only_shorten():
    with deadline.deadline(60):
        outer = deadline.remaining()
        with deadline.deadline(1):
            assert deadline.remaining() <= 1
            with deadline.deadline(120):
                assert deadline.remaining() <= 1
        assert deadline.remaining() > 1 and deadline.remaining() <= outer
    assert deadline.remaining() is None


def test_a_passed_deadline_sends_nothing(r, make_app):
    from dashboard import gate
    from dashboard.connection import connect

    client = gate.install(
        connect(f"redis://127.0.0.1:{r.connection_pool.connection_kwargs['port']}/0"), False
    )
    client.ping()
    before = r.info("stats")["total_commands_processed"]
    with deadline.deadline(0.000001), pytest.raises(deadline.DeadlineExceeded):
        threading.Event().wait(0.01)
        client.get("x")
    # nothing reached the server (INFO itself counts one)
    assert r.info("stats")["total_commands_processed"] == before + 1
    assert client.get("x") is None  # the connection is fine afterwards
    client.close()


def test_a_deadline_does_not_leak_into_threads_a_request_starts():
    seen = []
    with deadline.deadline(5):
        worker = threading.Thread(target=lambda: seen.append(deadline.remaining()))
        worker.start()
        worker.join()
    assert seen == [None]


# --- the pool waits, and a full pool is not "Redis unreachable" ----------------------------


def test_a_full_pool_waits_then_says_busy_not_unreachable(make_app, r):
    app = make_app(pool_size=1)
    web = app.test_client()
    assert web.get("/healthz").get_json()["redis"] == "ok"
    pool = app.extensions["redis_dashboard"].client.connection_pool
    assert isinstance(pool, DashboardPool)
    pool.wait_s = 0.2
    held = pool.get_connection()  # the only connection, busy elsewhere
    try:
        reply = web.get("/key.json", query_string={"k": encode_key(b"k")})
        assert reply.status_code == 503
        assert reply.get_json()["error"] == "Dashboard busy"
        assert "unreachable" not in reply.get_json()["message"].lower()
        assert reply.headers["Retry-After"] == "1"
        assert web.get("/healthz").get_json()["redis"] == "busy"
    finally:
        pool.release(held)
    assert web.get("/key.json", query_string={"k": encode_key(b"k")}).status_code == 200


def test_the_pool_hands_a_released_connection_to_a_waiter(r):
    from dashboard.connection import ConnectionOptions, connect

    port = r.connection_pool.connection_kwargs["port"]
    client = connect(f"redis://127.0.0.1:{port}/0", ConnectionOptions(pool_size=1))
    pool = client.connection_pool
    held = pool.get_connection()
    got = []
    waiter = threading.Thread(target=lambda: got.append(client.ping()))
    waiter.start()
    threading.Event().wait(0.1)
    pool.release(held)
    waiter.join(10)
    assert got == [True]
    with pytest.raises(PoolExhausted):
        pool.wait_s = 0.05
        held = pool.get_connection()
        try:
            client.ping()
        finally:
            pool.release(held)
    client.close()


def test_pages_pool_is_sized_to_the_threads(make_app):
    settings = make_app(threads=24).extensions["redis_dashboard"].settings
    assert settings.pool_connections >= 24


@pytest.mark.timeout(120)
def test_twenty_concurrent_viewers_never_see_too_many_connections(live_server, r):
    import json
    import urllib.error
    import urllib.request

    for i in range(5):
        r.xadd(f"s{i}", {"n": i})
        r.xgroup_create(f"s{i}", "g", id="0")
    base = live_server(pool_size=2, threads=24)
    answers = []

    def view() -> None:
        for _ in range(5):
            try:
                with urllib.request.urlopen(base + "/streams.json", timeout=60) as reply:
                    answers.append((reply.status, json.loads(reply.read())))
            except urllib.error.HTTPError as exc:
                answers.append((exc.code, json.loads(exc.read())))

    viewers = [threading.Thread(target=view) for _ in range(20)]
    for viewer in viewers:
        viewer.start()
    for viewer in viewers:
        viewer.join()
    assert len(answers) == 100
    bad = [a for a in answers if a[0] != 200]
    assert not bad, bad[:3]
    assert free_port()  # the machine still has ports: nothing leaked wildly


# --- the same on a real (one-node) cluster and a real Sentinel -----------------------------


@pytest.fixture
def one_node_cluster(private_server, tmp_path):
    import time

    server = private_server(
        "--cluster-enabled", "yes", "--cluster-config-file", str(tmp_path / "nodes.conf")
    )
    admin = redis.Redis(port=server.port)
    admin.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
    for _ in range(200):
        if b"cluster_state:ok" in admin.execute_command("CLUSTER", "INFO"):
            break
        time.sleep(0.05)
    admin.set("k", "v")
    yield f"redis+cluster://127.0.0.1:{server.port}"
    admin.close()


@pytest.fixture
def sentinel_url(private_server, tmp_path):
    import subprocess
    import time

    primary = private_server()
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor mymaster 127.0.0.1 {primary.port} 1\n"
    )
    proc = subprocess.Popen(["redis-server", str(conf), "--sentinel"], stdout=subprocess.DEVNULL)
    probe = redis.Redis(port=port)
    for _ in range(200):
        try:
            if probe.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster"):
                break
        except redis.ConnectionError:
            pass
        time.sleep(0.05)
    yield f"redis+sentinel://127.0.0.1:{port}/mymaster"
    probe.close()
    proc.terminate()
    proc.wait(10)


@pytest.mark.parametrize("kind", ["cluster", "sentinel"])
def test_cluster_and_sentinel_pools_wait_and_say_busy(kind, request):
    from dashboard import gate
    from dashboard.connection import ConnectionOptions, connect

    url = request.getfixturevalue("one_node_cluster" if kind == "cluster" else "sentinel_url")
    client = gate.install(connect(url, ConnectionOptions(pool_size=1)), False)
    try:
        assert client.ping()
        pool = (
            client.get_default_node().redis_connection.connection_pool
            if kind == "cluster"
            else client.connection_pool
        )
        assert isinstance(pool, DashboardPool)
        pool.wait_s = 0.1
        held = pool.get_connection()
        got = []
        waiter = threading.Thread(target=lambda: got.append(client.get("k")))
        waiter.start()
        threading.Event().wait(0.05)
        pool.release(held)  # the waiter gets it instead of failing
        waiter.join(10)
        assert len(got) == 1
        held = pool.get_connection()
        try:
            with pytest.raises(PoolExhausted):
                client.get("k")
        finally:
            pool.release(held)
    finally:
        client.close()
