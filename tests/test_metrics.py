"""/metrics: Prometheus text format (parsed by prometheus_client), bounded labels,
auth as every route, and served from the observer's picture: scraping costs Redis
nothing (checked with INFO commandstats)."""

import base64
import time

from prometheus_client.parser import text_string_to_metric_families

from dashboard.patterns.streams import ensure_group
from tests.observer_support import observer_of, wait_scan


def _families(text):
    return {f.name: f for f in text_string_to_metric_families(text)}


def _samples(families, name):
    return [s for s in families[name].samples if s.name == name]


def _by(families, name, label):
    return {s.labels[label]: s.value for s in _samples(families, name)}


def test_metrics_parse_and_give_per_namespace_bytes(make_app, r, tmp_path):
    for i in range(30):
        r.set(f"user:{i}", "x" * 200)
    for i in range(5):
        r.hset(f"cart:{i}", mapping={"a": "1", "b": "2"})
        r.expire(f"cart:{i}", 600)
    r.set("loose", "1")
    web = make_app(state=str(tmp_path / "m.sqlite"), rescan_interval=0).test_client()
    wait_scan(web)
    response = web.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=0.0.4")
    families = _families(response.get_data(as_text=True))
    memory = _by(families, "redis_dashboard_namespace_memory_bytes", "namespace")
    expected = {
        "user": sum(r.memory_usage(f"user:{i}") for i in range(30)),
        "cart": sum(r.memory_usage(f"cart:{i}") for i in range(5)),
        "(root)": r.memory_usage("loose"),
    }
    assert memory == expected
    keys = _by(families, "redis_dashboard_namespace_keys", "namespace")
    assert keys == {"user": 30, "cart": 5, "(root)": 1}
    no_ttl = _by(families, "redis_dashboard_namespace_keys_without_ttl", "namespace")
    assert no_ttl == {"user": 30, "cart": 0, "(root)": 1}
    findings = {
        (s.labels["rule"], s.labels["severity"]): s.value
        for s in _samples(families, "redis_dashboard_audit_findings")
    }
    assert findings  # every rule that ran, with its count (0 included)
    assert all(v >= 0 for v in findings.values())
    assert _samples(families, "redis_dashboard_up")[0].value == 1
    assert _samples(families, "redis_dashboard_keyspace_keys")[0].value == 36
    assert families["redis_dashboard_scrapes"].type == "counter"
    names = [f.name for f in families.values()]
    assert all(n.startswith("redis_dashboard_") for n in names)


def test_label_cardinality_is_bounded_with_an_other_bucket(make_app, r, tmp_path):
    for n in range(8):
        for i in range(n + 1):
            r.set(f"ns{n}:{i}", "v" * 100)
    web = make_app(state=str(tmp_path / "c.sqlite"), rescan_interval=0, metrics_top_n=3)
    client = web.test_client()
    scan = wait_scan(client)
    families = _families(client.get("/metrics").get_data(as_text=True))
    memory = _by(families, "redis_dashboard_namespace_memory_bytes", "namespace")
    assert len(memory) == 4 and "(other)" in memory
    total = sum(c["bytes"] for c in scan["children"])
    assert sum(memory.values()) == total  # nothing lost, nothing counted twice
    biggest = sorted(scan["children"], key=lambda c: -c["bytes"])[:3]
    assert set(memory) - {"(other)"} == {c["name"] for c in biggest}
    assert _samples(families, "redis_dashboard_namespaces_in_other")[0].value == 5


def test_hostile_names_are_escaped_label_values(make_app, r, tmp_path):
    weird = 'q"u\\o te'
    r.set(f"{weird}:1", "x")
    ensure_group(r, 'st"ream', "gr\\oup", start_id="0")
    r.xadd('st"ream', {"a": 1})
    web = make_app(state=str(tmp_path / "e.sqlite"), rescan_interval=0).test_client()
    scan = wait_scan(web)
    reading, _ = observer_of(web).refresh("streams")
    group = reading["streams"][0]["groups"][0]["name"]  # display text, as /streams shows it
    families = _families(web.get("/metrics").get_data(as_text=True))
    namespaces = _by(families, "redis_dashboard_namespace_keys", "namespace")
    shown = next(c["path"] for c in scan["children"] if c["path"] and "te" in c["path"])
    assert namespaces[shown] == 1  # the label is the text the page shows, quotes and all
    lag = _samples(families, "redis_dashboard_stream_group_lag")
    assert [(s.labels["stream"], s.labels["group"], s.value) for s in lag] == [
        ('st"ream', group, 1)
    ]


def _calls(r):
    stats = r.info("commandstats")
    return {name: v["calls"] for name, v in stats.items()}


def test_a_hundred_scrapes_send_no_command_to_redis(make_app, r, tmp_path):
    for i in range(50):
        r.set(f"k:{i}", i)
    ensure_group(r, "events", "g", start_id="0")
    r.xadd("events", {"a": 1})
    app = make_app(state=str(tmp_path / "q.sqlite"), rescan_interval=0, history_interval=3600)
    web = app.test_client()
    wait_scan(web)
    observer = observer_of(web)
    deadline = time.monotonic() + 20  # the samples taken at start (then one an hour)
    while time.monotonic() < deadline:
        sections = observer.status()["sections"]
        if len(sections) == 4 and all(s["generation"] and not s["refreshing"] for s in sections):
            break
        time.sleep(0.05)
    first = web.get("/metrics").get_data(as_text=True)
    assert "redis_dashboard_stream_group_lag" in first  # live state is there, from the picture
    before = _calls(r)
    for _ in range(100):
        assert web.get("/metrics").status_code == 200
    after = _calls(r)
    before["cmdstat_info"] = before.get("cmdstat_info", 0) + 1  # the INFO just above
    assert after == before


def test_metrics_need_the_same_auth_as_every_page(make_app, r, tmp_path):
    web = make_app(
        state=str(tmp_path / "a.sqlite"), username="prom", password="s3cret", rescan_interval=0
    ).test_client()
    assert web.get("/metrics").status_code == 401
    token = base64.b64encode(b"prom:s3cret").decode()
    ok = web.get("/metrics", headers={"Authorization": f"Basic {token}"})
    assert ok.status_code == 200 and b"redis_dashboard_up" in ok.data


def test_metrics_documented(make_app, r, tmp_path):
    from pathlib import Path

    r.set("a:1", "1")
    ensure_group(r, "s", "g", start_id="0")
    web = make_app(state=str(tmp_path / "d.sqlite"), rescan_interval=0).test_client()
    wait_scan(web)
    for kind in ("overview", "ratelimits", "locks", "streams"):
        observer_of(web).refresh(kind)
    doc = (Path(__file__).resolve().parent.parent / "docs" / "metrics.md").read_text()
    families = _families(web.get("/metrics").get_data(as_text=True))
    for name, family in families.items():
        metric = name + "_total" if family.type == "counter" else name
        short = "_" + metric.split("_", 3)[-1]
        assert f"`{metric}`" in doc or short in doc, f"{metric} is not in docs/metrics.md"


def test_a_broken_target_is_down_not_a_failed_scrape(redis_server, r, tmp_path):
    from dashboard.targets import Target
    from dashboard.web import create_app

    targets = [Target("good", redis_server.url), Target("bad", "redis://:x@/nowhere?db=z")]
    app = create_app({"state": str(tmp_path), "rescan_interval": 0}, targets=targets)
    try:
        response = app.test_client().get("/metrics")
        assert response.status_code == 200
        families = _families(response.get_data(as_text=True))
        up = _by(families, "redis_dashboard_up", "target")
        assert up["bad"] == 0
        errors = _samples(families, "redis_dashboard_last_error")
        assert any(s.labels["target"] == "bad" for s in errors)
    finally:
        app.extensions["redis_dashboard_fleet"].close()
