"""`redis-dashboard demo` as a user runs it: with and without redis-server on PATH,
a live dashboard with traffic, and nothing left running after Ctrl-C or SIGTERM."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys

import pytest
import redis
from demo_support import alive, start_demo, wait_for

from dashboard.embedded import in_ci


def _port_closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def _live_traffic(demo, client: redis.Redis) -> None:
    """Keys appear in the demo's Redis and the order stream grows; the views show them."""
    wait_for(lambda: client.dbsize() > 20, 60, 0.2, "keys from the simulated traffic")
    first = wait_for(lambda: client.xlen("shop:orders"), 60, 0.2, "a first order")
    wait_for(lambda: client.xlen("shop:orders") > first, 60, 0.2, "the order stream to grow")
    wait_for(lambda: b"shop:orders" in demo.get("/streams.json"), 30, 0.5, "/streams")

    def scanned():
        keyspace = json.loads(demo.get("/keyspace.json"))
        return keyspace if keyspace["scan"]["state"] == "done" else None

    names = {child["name"] for child in wait_for(scanned, 60, 0.5, "the keyspace scan")["children"]}
    assert {"session", "cache", "ratelimit", "lock", "shop"} <= names
    playground = json.loads(demo.get("/playground.json"))
    assert playground["simulator"]["running"] and playground["target"]["writes"]
    return playground


def _need_redis_server() -> None:
    """Skip without redis-server on PATH, but fail in CI (CI=true), where it must be."""
    if shutil.which("redis-server"):
        return
    if in_ci():
        pytest.fail("CI needs redis-server on PATH", pytrace=False)
    pytest.skip("needs redis-server on PATH")


def test_demo_on_a_private_redis_server_then_ctrl_c_leaves_nothing():
    _need_redis_server()
    demo = start_demo()
    try:
        banner = demo.banner()
        assert f"http://127.0.0.1:{demo.port}/playground" in banner
        redis_pid, redis_port = demo.redis_pid(), demo.redis_port()
        assert redis_pid in demo.descendants()
        client = redis.Redis(port=redis_port)
        playground = _live_traffic(demo, client)
        assert playground["target"]["kind"] == "redis-server"
        assert client.config_get("save")["save"] == ""  # no persistence
        tree = demo.descendants()
        assert len(tree) >= 2  # the redis-server and gunicorn's worker
    finally:
        code = demo.stop(signal.SIGINT, group=True)  # what Ctrl-C in a terminal sends
    assert code == 0, "\n".join(demo.lines)
    assert not [pid for pid in tree if alive(pid)]
    assert not alive(redis_pid)
    assert _port_closed(redis_port) and _port_closed(demo.port)


def test_demo_without_redis_server_uses_fakeredis_then_sigterm_leaves_nothing(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    demo = start_demo(path=str(empty))
    try:
        banner = demo.banner()
        assert "fakeredis" in banner and "redis-server is not on PATH" in banner
        redis_port = demo.redis_port()
        client = redis.Redis(port=redis_port)
        playground = _live_traffic(demo, client)
        assert playground["target"]["kind"] == "fakeredis"
        assert "INFO" in playground["target"]["missing"]
        assert b"fakeredis (stand-in)" in demo.get("/overview")  # every page says so
        assert b"unavailable" in demo.get("/overview")
        tree = demo.descendants()
    finally:
        code = demo.stop(signal.SIGTERM, group=False)  # a service manager stops the master
    assert code == 0, "\n".join(demo.lines)
    assert not [pid for pid in tree if alive(pid)]
    assert _port_closed(redis_port) and _port_closed(demo.port)


def test_demo_with_url_refuses_without_allow_writes(redis_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_DASHBOARD_")}
    done = subprocess.run(
        [sys.executable, "-m", "dashboard.cli", "demo", "--url", redis_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--allow-writes" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_demo_ignores_a_url_in_the_environment(r, redis_url, tmp_path):
    """REDIS_DASHBOARD_URL is for `serve`: the demo still runs on a server of its own."""
    empty = tmp_path / "bin"
    empty.mkdir()
    environ = {"REDIS_DASHBOARD_URL": redis_url, "REDIS_DASHBOARD_ALLOW_WRITES": "1"}
    demo = start_demo("--no-traffic", path=str(empty), env=environ)
    try:
        assert "fakeredis" in demo.banner()
        assert json.loads(demo.get("/playground.json"))["simulator"]["running"] is False
    finally:
        demo.stop()
    assert r.dbsize() == 0
