"""History in the web app: compare two scans (and after a restart), trends and their
twins, a damaged state file, history off, a fleet."""

import time

from dashboard.history import queries
from dashboard.history.record import COUNTER, GAUGE, record_samples
from dashboard.targets import Target
from tests.observer_support import observer_of, wait_scan

DOCS_FIELDS = (
    "a",
    "b",
    "totals",
    "namespaces",
    "appeared",
    "vanished",
    "findings",
    "warnings",
    "history",
    "scans",
    "error",
    "status",
    "depth",
)


def _history(client_or_app):
    app = getattr(client_or_app, "application", client_or_app)
    return app.extensions["redis_dashboard"].history


def _rescan(web):
    observer = observer_of(web)
    assert observer.keyspace.wait(30)
    observer.rescan("test")
    time.sleep(0.05)
    data = wait_scan(web)
    assert _history(web).writer.flush()
    return data


def _plant(r, prefix, n, size=20):
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        pipe.set(f"{prefix}:{i}", "v" * size)
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()


def test_compare_shows_a_namespace_that_grew_by_50000_keys_and_survives_a_restart(
    make_app, r, tmp_path
):
    state = str(tmp_path / "hist.sqlite")
    _plant(r, "orders", 100)
    _plant(r, "users", 50)
    web = make_app(state=state, rescan_interval=0).test_client()
    first = wait_scan(web)
    assert _history(web).writer.flush()
    _plant(r, "orders", 50_100)  # 100 rewritten, 50,000 new
    second = _rescan(web)

    def node(scan, name):
        return next(c for c in scan["children"] if c["name"] == name)

    data = web.get("/compare.json").get_json()
    assert data["a"]["id"] == first["scan"]["id"] and data["b"]["id"] == second["scan"]["id"]
    orders = next(n for n in data["namespaces"] if n["namespace"] == "orders")
    assert orders["status"] == "grown"
    assert orders["keys_delta"] == 50_000
    assert orders["bytes_a"] == node(first, "orders")["bytes"]
    assert orders["bytes_b"] == node(second, "orders")["bytes"]
    assert orders["bytes_delta"] == orders["bytes_b"] - orders["bytes_a"] > 0
    assert all(n["namespace"] != "users" for n in data["namespaces"])  # unchanged: filtered
    assert data["totals"]["keys_delta"] == 50_000
    missing = [f for f in data if f not in DOCS_FIELDS]
    assert not missing
    html = web.get("/compare").get_data(as_text=True)
    assert 'data-namespace="orders" data-status="grown"' in html
    assert "+50,000" in html

    app = web.application
    app.extensions["redis_dashboard"].close()  # the dashboard stops...
    again = make_app(state=state, rescan_interval=0).test_client()  # ...and starts again
    after = again.get(f"/compare.json?a={data['a']['id']}&b={data['b']['id']}").get_json()
    assert after["namespaces"] == data["namespaces"]
    assert after["totals"] == data["totals"]


def test_compare_reports_appeared_vanished_and_findings(make_app, r, tmp_path):
    _plant(r, "old", 10)
    web = make_app(state=str(tmp_path / "h.sqlite"), rescan_interval=0).test_client()
    wait_scan(web)
    r.delete(*[f"old:{i}" for i in range(10)])
    _plant(r, "fresh", 10)
    _rescan(web)
    data = web.get("/compare.json?status=all").get_json()
    assert data["appeared"] == ["fresh"] and data["vanished"] == ["old"]
    statuses = {n["namespace"]: n["status"] for n in data["namespaces"]}
    assert statuses["fresh"] == "appeared" and statuses["old"] == "vanished"
    appeared = {(f["rule"], f["subject"]) for f in data["findings"]["appeared"]}
    resolved = {(f["rule"], f["subject"]) for f in data["findings"]["resolved"]}
    assert ("missing-ttl", "fresh") in appeared
    assert ("missing-ttl", "old") in resolved
    only_grown = web.get("/compare.json?status=vanished").get_json()["namespaces"]
    assert [n["namespace"] for n in only_grown] == ["old"]


def test_compare_errors_are_clear(make_app, r, tmp_path):
    web = make_app(state=str(tmp_path / "h.sqlite"), rescan_interval=0).test_client()
    wait_scan(web)
    assert _history(web).writer.flush()
    data = web.get("/compare.json").get_json()
    assert "fewer than two scans" in data["error"]
    assert web.get("/compare.json?a=nope").status_code == 404
    assert web.get("/compare.json?status=bogus").status_code == 400
    assert web.get("/compare").status_code == 200


def test_damaged_state_file_serves_with_a_warning(make_app, r, tmp_path, caplog):
    path = tmp_path / "broken.sqlite"
    junk = b"\x00garbage, not SQLite\x00" * 500
    path.write_bytes(junk)
    web = make_app(state=str(path), rescan_interval=0).test_client()
    assert web.get("/overview").status_code == 200
    wait_scan(web)
    status = web.get("/history.json").get_json()["history"]
    assert status["mode"] == "memory" and "damaged" in status["warning"]
    page = web.get("/history").get_data(as_text=True)
    assert "damaged" in page and 'role="alert"' in page
    assert "damaged" in web.get("/overview").get_data(as_text=True)  # on the trend panel too
    assert "redis_dashboard_history_in_memory" in web.get("/metrics").get_data(as_text=True)
    assert _history(web).writer.flush()
    assert queries.scans(_history(web).store)  # this run's history is kept in memory
    assert path.read_bytes() == junk  # and the file is left for the user to look at
    assert "damaged" in caplog.text


def test_no_state_keeps_nothing_and_says_so(make_app, r, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    web = make_app(no_state=True, rescan_interval=0).test_client()
    wait_scan(web)
    assert observer_of(web).status()["sections"] == []  # nothing sampled while nobody watches
    assert _history(web) is None
    data = web.get("/history.json").get_json()
    assert data["history"]["enabled"] is False and data["charts"] == []
    assert "--no-state" in web.get("/overview").get_data(as_text=True)
    assert web.get("/compare.json").get_json()["error"]
    assert not list(tmp_path.rglob("*.sqlite"))


def test_trend_charts_and_their_twins_carry_the_same_points(make_app, r, tmp_path):
    web = make_app(state=str(tmp_path / "t.sqlite"), rescan_interval=0).test_client()
    history = _history(web)
    now = int(time.time())
    points = [(now - 600 + i * 60, 1000.0 * (i + 1)) for i in range(10)]

    def write(conn):
        for t, v in points:
            record_samples(conn, t, [("used_memory_bytes", None, GAUGE, v)])
            record_samples(conn, t, [("keyspace_hits", None, COUNTER, v * 2)])
            record_samples(conn, t, [("keyspace_misses", None, COUNTER, v)])

    history.writer.submit(write)
    assert history.writer.flush()
    data = web.get("/history.json?range=1h").get_json()
    memory = next(c for c in data["charts"] if c["id"] == "memory")
    used = memory["series"][0]
    mine = {t for t, _ in points}  # the observer samples the real server beside them
    assert [p[1] for p in used["points"] if p[0] in mine] == [v for _, v in points]
    ratio = next(c for c in data["charts"] if c["id"] == "hit_ratio")["series"][0]
    ours = [v for t, v in ratio["points"] if t in mine]
    assert len(ours) == 9 and all(abs(v - 2 / 3) < 1e-9 for v in ours)
    html = web.get("/history?range=1h").get_data(as_text=True)
    chart = html[html.index('id="chart-memory"') :]
    assert "<polyline" in chart[: chart.index("</figure>")]
    assert "<script" not in chart[: chart.index("</figure>")]
    assert web.get("/history.json?range=2y").status_code == 400
    overview = web.get("/overview").get_data(as_text=True)
    assert 'id="trends-server"' in overview and 'id="chart-memory"' in overview


def test_keyspace_trends_follow_a_namespace_and_its_movers(make_app, r, tmp_path):
    _plant(r, "app:cache", 10)
    _plant(r, "app:sess", 10)
    web = make_app(state=str(tmp_path / "k.sqlite"), rescan_interval=0).test_client()
    wait_scan(web)
    _plant(r, "app:cache", 500)
    scan = _rescan(web)
    app_node = next(c for c in scan["children"] if c["name"] == "app")
    data = web.get(f"/history/keyspace.json?ns={app_node['id']}").get_json()
    assert data["namespace"]["path"] == "app" and data["scans"] == 2
    keys = next(c for c in data["charts"] if c["id"] == "keys")["series"][0]
    assert [p[1] for p in keys["points"]] == [20, 510]
    assert data["movers"][0]["namespace"] == "app:cache"
    assert data["movers"][0]["keys_delta"] == 490
    page = web.get(f"/keyspace?ns={app_node['id']}").get_data(as_text=True)
    assert 'id="trends-keyspace"' in page and 'id="movers"' in page


def test_stream_trends_list_sampled_groups(make_app, r, tmp_path):
    r.xadd("jobs", {"n": 1})
    r.xgroup_create("jobs", "workers", id="0")
    web = make_app(state=str(tmp_path / "s.sqlite"), history_interval=1).test_client()
    history = _history(web)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not queries.series_labels(history.store, "stream_lag"):
        time.sleep(0.1)  # sampled by the observer although no page asked
    data = web.get("/history/streams.json").get_json()
    assert data["groups"][0]["stream"] == "jobs" and data["groups"][0]["group"] == "workers"
    assert data["groups"][0]["lag"] == 1
    assert 'id="trends-streams"' in web.get("/streams").get_data(as_text=True)


def test_each_target_of_a_fleet_has_its_own_state_file(redis_server, r, tmp_path):
    from dashboard.web import create_app

    targets = [
        Target("a", redis_server.url),
        Target("b", redis_server.url.rsplit("/", 1)[0] + "/1"),
    ]
    app = create_app({"state": str(tmp_path), "rescan_interval": 0}, targets=targets)
    try:
        web = app.test_client()
        a = web.get("/t/a/history.json").get_json()["history"]
        b = web.get("/t/b/history.json").get_json()["history"]
        assert a["path"] == str(tmp_path / "a.sqlite")
        assert b["path"] == str(tmp_path / "b-db1.sqlite")
        page = web.get("/t/b/history").get_data(as_text=True)
        assert 'hx-get="/t/b/history?range=24h"' in page
        assert web.get("/t/a/compare.json").status_code == 200
    finally:
        app.extensions["redis_dashboard_fleet"].close()
