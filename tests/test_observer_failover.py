"""A running dashboard through failovers, on the suite's real cluster and Sentinel set.

While a viewer keeps polling every page, a primary is killed and another shard fails
over by hand (CLUSTER FAILOVER); a Sentinel-managed primary is taken over by its
replica. The observer follows without a restart: the next scan's totals equal the
ground truth, and no page answers 5xx for longer than the failover itself lasted.
"""

from __future__ import annotations

import threading
import time

import redis
from observer_support import observer_of
from test_cluster_topology import plant

PAGES = (
    "/",
    "/keyspace.json",
    "/audit.json",
    "/overview.json",
    "/ratelimits.json",
    "/locks.json",
    "/streams.json",
    "/pubsub.json",
)


class Poller:
    """Polls every page in a loop; records each answer's time and status."""

    def __init__(self, app) -> None:
        self.client = app.test_client()
        self.answers: list[tuple[float, str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for page in PAGES:
                status = self.client.get(page).status_code
                self.answers.append((time.monotonic(), page, status))
            self._stop.wait(0.1)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(30)

    def longest_5xx(self) -> float:
        """The longest stretch of seconds any page kept answering 5xx."""
        longest, since = 0.0, {}
        for at, page, status in self.answers:
            if status >= 500:
                since.setdefault(page, at)
                longest = max(longest, at - since[page])
            else:
                since.pop(page, None)
        return longest


def _wait_new_scan(observer, after: str | None, timeout: float = 100) -> dict:
    """The next finished scan; on failure, what the cycle went through (within the
    suite's per-test timeout, so the story is printed)."""
    cycle = observer.keyspace
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cycle.wait(1.0):
            picture = cycle.picture
            if picture is not None and picture["scan"]["id"] != after:
                return picture
        time.sleep(0.1)
    events = (cycle.running or {}).get("events", [])[-20:]
    raise AssertionError(f"no new scan: {cycle.state} {cycle.error} {events}")


def _quick_app(make_app, cluster, **settings):
    """A dashboard on the cluster that scans only when asked, reads the server often
    and gives up on a dead node within a second."""
    quick = {"rescan_interval": 0, "server_refresh_s": 0.2, "socket_timeout": 1}
    return make_app(url=cluster.url, connect_timeout=1, **quick, **settings)


def test_cluster_failovers_while_the_dashboard_runs(cluster, cluster_client, make_app):
    planted = plant(cluster, cluster_client)
    app = _quick_app(make_app, cluster, scan_count=50, scan_throttle_ms=2, live_refresh_s=0.2)
    observer = observer_of(app)
    first = _wait_new_scan(observer, None)
    assert first["result"]["tree"]["keys"] == len(planted)
    victim, other = cluster.primaries()[0], cluster.primaries()[1]
    with Poller(app) as poller:
        time.sleep(0.5)
        observer.rescan("test: a scan under way while the primaries change")
        began = time.monotonic()
        cluster.failover(other)  # one shard fails over by hand (CLUSTER FAILOVER)...
        victim.kill()  # ...and another's primary dies: its replica takes over (node timeout)
        cluster.wait_converged(60)
        failover_s = time.monotonic() - began
        picture = _wait_new_scan(observer, first["scan"]["id"])
        time.sleep(1.0)  # the live pages read the new map too
    cluster.wait_converged()  # (the killed node stays down: the next test's fixture heals)
    assert picture["scan"]["state"] == "done"
    assert picture["result"]["tree"]["keys"] == cluster.dbsize() == len(planted)
    assert picture["scan"]["vanished"] == 0
    assert poller.longest_5xx() <= failover_s, poller.longest_5xx()
    statuses = {page: status for _, page, status in poller.answers[-len(PAGES) :]}
    assert set(statuses.values()) == {200}, statuses  # after it: every page answers
    overview = app.test_client().get("/overview.json").get_json()
    assert f"127.0.0.1:{victim.port}" not in [
        n["address"] for n in overview["nodes"] if n["role"] == "primary"
    ]
    # And a scan requested after the dust settled counts every key too, no restart needed.
    observer.rescan("test: after the failovers")
    again = _wait_new_scan(observer, picture["scan"]["id"])
    assert again["result"]["tree"]["keys"] == len(planted) and again["audit"]["scanned_keys"]


def test_sentinel_failover_is_followed(sentinel_set, make_app):
    primary = redis.Redis(port=sentinel_set.primary_port())
    for i in range(500):
        primary.set(f"k:{i}", i)
    primary.close()
    sentinel_set.sync_replicas()
    app = make_app(
        url=sentinel_set.url,
        rescan_interval=0,
        server_refresh_s=0.2,
        socket_timeout=1,
        connect_timeout=1,
    )
    observer = observer_of(app)
    web = app.test_client()
    before = _wait_new_scan(observer, None)
    assert before["result"]["tree"]["keys"] == 500
    old = web.get("/overview.json").get_json()
    with Poller(app) as poller:
        began = time.monotonic()
        new_port = sentinel_set.failover().port
        failover_s = time.monotonic() - began
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            observer.refresh("overview", timeout=10)
            now = web.get("/overview.json").get_json()
            address = observer.client.connection_pool.master_address
            if now.get("role") == "primary" and address and address[1] == new_port:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the observer did not follow the new primary")
    assert poller.longest_5xx() <= failover_s + 1.0
    assert old["freshness"]["state"] == "ok"
    observer.rescan("test: after the failover")
    after = _wait_new_scan(observer, before["scan"]["id"])
    assert after["result"]["tree"]["keys"] == 500
    client = redis.Redis(port=new_port)
    assert client.info("replication")["role"] == "master"
    client.close()


def test_a_dead_primary_leaves_the_overview_without_any_other_reading(
    cluster, make_app, monkeypatch
):
    """Only the overview is read (no scan running, no other page watched, the periodic
    node-map check pushed out of reach): its own unanswered primary makes the observer
    re-read the map, so the overview follows the failover by itself."""
    from dashboard.embedded import wait_for
    from dashboard.observer import observer as observer_module

    monkeypatch.setattr(observer_module, "TOPOLOGY_EVERY_S", 3600.0)
    app = _quick_app(make_app, cluster, no_state=True)
    web = app.test_client()
    observer = observer_of(app)
    assert observer.keyspace.wait(60)  # the start-up scan is over: nothing else reads

    def primaries() -> list[str]:
        nodes = web.get("/overview.json").get_json()["nodes"]
        return [n["address"] for n in nodes if n["role"] == "primary"]

    victim = cluster.primaries()[0]
    address = f"127.0.0.1:{victim.port}"
    assert address in primaries()
    victim.kill()
    cluster.wait_converged(60)
    wait_for(lambda: address not in primaries(), "the overview to leave the dead primary", 60)
    nodes = web.get("/overview.json").get_json()["nodes"]
    assert all(n["reachable"] for n in nodes if n["role"] == "primary")
    whys = [e["why"] for e in observer.topology_events]
    assert any(address in why and "did not answer" in why for why in whys), whys
