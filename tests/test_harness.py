from pathlib import Path

import pytest
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
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    server = private_server()
    client = redis.Redis(port=server.port, retry=Retry(NoBackoff(), 0))
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


STARTERS = {
    "server": "server = EmbeddedRedis().start()\npids = [server.process.pid]\n",
    "cluster": (
        "from dashboard.embedded_cluster import EmbeddedCluster\n"
        "c = EmbeddedCluster().start()\npids = [n.process.pid for n in c.nodes]\n"
    ),
    "sentinel": (
        "from dashboard.embedded_sentinel import EmbeddedSentinel\n"
        "s = EmbeddedSentinel().start()\n"
        "pids = [n.process.pid for n in s.data + s.sentinels]\n"
    ),
}


@pytest.mark.parametrize("kind", sorted(STARTERS))
def test_servers_die_with_a_killed_parent(tmp_path, kind):
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
        + STARTERS[kind]
        + "print(' '.join(map(str, pids)), flush=True)\n"
        "time.sleep(120)\n"
    )
    starter = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in starter.stdout.readline().split()]
    assert len(pids) == {"server": 1, "cluster": 6, "sentinel": 5}[kind]
    for pid in pids:
        os.kill(pid, 0)  # the servers run
    starter.send_signal(signal.SIGKILL)
    starter.wait()
    deadline = time.monotonic() + 20
    left = set(pids)
    while left and time.monotonic() < deadline:
        left = {pid for pid in left if _running(pid)}
        time.sleep(0.05)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"redis-server processes outlived the process that started them: {left}"


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


# --- the real cluster and Sentinel set ----------------------------------------------


def test_cluster_has_three_primaries_each_with_a_synced_replica(cluster, cluster_client):
    assert cluster_client.cluster_info()["cluster_state"] == "ok"
    primaries = {n.port for n in cluster.primaries()}
    replicas = {n.port for n in cluster.replicas()}
    assert len(primaries) == 3 and len(replicas) == 3 and not primaries & replicas
    assert {n.port for n in cluster_client.get_primaries()} == primaries
    assert {n.port for n in cluster_client.get_replicas()} == replicas
    for i in range(300):
        cluster_client.set(f"k:{{{i}}}", i)
    cluster.sync_replicas()
    assert cluster.dbsize() == 300
    for primary in cluster.primaries():
        replica = cluster.replica_of(primary)
        on_primary = redis.Redis(port=primary.port).dbsize()
        assert 0 < on_primary == redis.Redis(port=replica.port).dbsize()
    slots = cluster_client.cluster_slots()
    assert sum(end - start + 1 for start, end in slots) == 16384


def test_cluster_heals_after_a_crash_and_a_failover(cluster, cluster_client):
    victim = cluster.primaries()[0]
    heir = cluster.replica_of(victim)
    victim.kill()
    from dashboard.embedded import wait_for

    wait_for(lambda: heir in cluster.primaries(), "the replica to be promoted", 60)
    cluster.heal()
    assert victim.alive() and victim in cluster.replicas()
    assert cluster.replica_of(heir) is victim
    new = cluster.failover(heir)
    assert new is victim and heir in cluster.replicas()


def test_cluster_stop_leaves_nothing(tmp_path):
    from dashboard.embedded_cluster import EmbeddedCluster

    c = EmbeddedCluster(primaries=1, replicas=0).start()
    dirs = [n.directory for n in c.nodes]
    processes = [n.process for n in c.nodes]
    c.stop()
    assert all(p.poll() is not None for p in processes)
    assert not any(d.exists() for d in dirs)


def test_a_cluster_that_cannot_heal_says_why_and_is_formed_anew():
    from dashboard.embedded_cluster import EmbeddedCluster

    c = EmbeddedCluster(primaries=1, replicas=1).start()
    try:
        replica = c.replicas()[0]
        with redis.Redis(port=replica.port) as admin:
            admin.execute_command("CLUSTER", "RESET", "HARD")  # forgets the cluster
        with pytest.raises(TimeoutError, match=f"127.0.0.1:{replica.port} says cluster_state fail"):
            c.wait_healthy(timeout=1)
        assert f"127.0.0.1:{replica.port} fail: " in c.describe()
        old = [n.process for n in c.nodes]
        c.rebuild()
        assert all(p.poll() is not None for p in old)
        assert len(c.primaries()) == len(c.replicas()) == 1
        c.wait_healthy(timeout=10)
    finally:
        c.stop()


def test_sentinel_set_agrees_and_fails_over(sentinel_set):
    primary = sentinel_set.primary()
    [replica] = sentinel_set.replicas()
    assert redis.Redis(port=primary.port).execute_command("ROLE")[0] == b"master"
    assert redis.Redis(port=replica.port).info("replication")["master_port"] == primary.port
    new = sentinel_set.failover()
    assert new is replica and sentinel_set.replicas() == [primary]
