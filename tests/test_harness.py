from pathlib import Path

import redis


def test_private_server_is_ours_and_clean(r, redis_server):
    # The suite's own server: loopback, no persistence, and an empty database.
    assert r.dbsize() == 0
    assert r.config_get("save")["save"] == ""
    assert r.config_get("appendonly")["appendonly"] == "no"
    assert redis_server.port == r.connection_pool.connection_kwargs["port"]
    r.set("left:behind", 1)


def test_each_test_gets_a_clean_database(r):
    assert r.get("left:behind") is None


def test_private_server_stops(private_server):
    server = private_server()
    client = redis.Redis(port=server.port)
    assert client.ping()
    server.stop()
    try:
        client.ping()
    except redis.ConnectionError:
        pass
    else:
        raise AssertionError("server still answers after stop()")
    finally:
        client.close()


def test_server_dies_with_a_killed_parent(tmp_path):
    """A test run or demo killed with SIGKILL leaves no redis-server behind."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "starter.py"
    script.write_text(
        "import time\n"
        "from dashboard.embedded import EmbeddedRedis\n"
        "server = EmbeddedRedis().start()\n"
        "print(server.process.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    starter = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    pid = int(starter.stdout.readline())
    os.kill(pid, 0)  # the server runs
    starter.send_signal(signal.SIGKILL)
    starter.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            state = stat.rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return
        if state == "Z":  # exited; waiting for whoever adopted it to reap it
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    raise AssertionError("redis-server outlived the process that started it")
