"""A fleet: several Redis targets in one dashboard, each with its own observer and pages."""

import json
import re
from urllib.parse import quote

import pytest
import redis

from dashboard.targets import Target, TargetsError, from_urls, load_targets, parse_targets
from dashboard.web import create_app

SECRET = "s3cr:et/pa@ss#"


def _toml(tmp_path, text):
    path = tmp_path / "targets.toml"
    path.write_text(text)
    return str(path)


def test_credentials_come_from_the_environment_and_are_never_shown(tmp_path):
    path = _toml(
        tmp_path,
        """
[[target]]
name = "cache"
url = "redis://cache.internal:6379/0"
password_env = "CACHE_PW"
username_env = "CACHE_USER"

[[target]]
name = "queues"
url_env = "QUEUES_URL"
allow_writes = true
""",
    )
    env = {"CACHE_PW": SECRET, "CACHE_USER": "app", "QUEUES_URL": "redis://:pw2@q:6380/1"}
    cache, queues = load_targets(path, environ=env)
    assert redis.Redis.from_url(cache.url).connection_pool.connection_kwargs["password"] == SECRET
    assert cache.public() == {
        "name": "cache",
        "url": "redis://app:***@cache.internal:6379/0",
        "allow_writes": False,
    }
    assert queues.allow_writes and queues.public()["url"] == "redis://:***@q:6380/1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[target]]\nname = "a"\n', "give url"),
        ('[[target]]\nname = "a b"\nurl = "redis://x"\n', "name must be"),
        ('[[target]]\nname = "a"\nurl = "redis://x"\ncolour = 1\n', "unknown keys"),
        ('[[target]]\nname = "a"\nurl = "redis://x"\npassword_env = "NOPE"\n', "NOPE"),
        (
            '[[target]]\nname = "a"\nurl = "redis://x"\n[[target]]\nname = "a"\nurl = "r://y"\n',
            "unique",
        ),
        ("target = 1\n", "no [[target]]"),
        ("[[target]\n", "not valid TOML"),
    ],
)
def test_bad_targets_files_say_what_is_wrong(tmp_path, text, message):
    with pytest.raises(TargetsError, match=re.escape(message)):
        load_targets(_toml(tmp_path, text), environ={})


def test_names_from_urls_are_unique_and_url_safe():
    names = [
        t.name for t in from_urls(["redis://:pw@h:1/0", "redis://h:1/1", "unix:///run/r.sock"])
    ]
    assert names == ["h-1", "h-1-2", "run-r.sock"]
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+", n) for n in names)


def test_a_target_file_without_tables_is_refused():
    with pytest.raises(TargetsError):
        parse_targets({}, "x.toml", environ={})


@pytest.fixture
def fleet_app(private_server):
    one, two = private_server(), private_server()
    redis.Redis(port=one.port).mset({"cache:a": 1, "cache:b": 2})
    redis.Redis(port=two.port).set("queue:x", "y")
    password_url = f"redis://:{quote(SECRET, safe='')}@127.0.0.1:{two.port}/0"
    redis.Redis(port=two.port).config_set("requirepass", SECRET)
    targets = [Target("cache", one.url), Target("queues", password_url)]
    app = create_app({"rescan_interval": 0, "socket_timeout": 1, "connect_timeout": 1}, targets)
    app.config["TESTING"] = True
    yield app, one, two
    app.extensions["redis_dashboard_fleet"].close()


def test_each_target_has_its_own_pages_and_picture(fleet_app):
    app, _one, _two = fleet_app
    web = app.test_client()
    cache = wait_scan_of(web, "cache")
    queues = wait_scan_of(web, "queues")
    assert cache["totals"]["keys"] == 2 and queues["totals"]["keys"] == 1
    assert cache["scan"]["id"] != queues["scan"]["id"]
    html = web.get("/t/queues/keyspace").get_data(as_text=True)
    links = re.findall(r'href="(/[^"]*)"', html)
    app_links = [h for h in links if not h.startswith(("/t/cache/", "/fleet", "/t/queues/fleet"))]
    assert app_links and all(h.startswith("/t/queues/") for h in app_links), app_links
    assert '<strong id="target-name">queues</strong>' in html
    assert SECRET not in html and "***" in html
    plain = web.get("/keyspace.json").get_json()  # no prefix: the first target
    assert plain["scan"]["id"] == cache["scan"]["id"]


def wait_scan_of(web, name):
    observer = web.application.extensions["redis_dashboard_fleet"].states[name].observer
    assert observer.keyspace.wait(30)
    return web.get(f"/t/{name}/keyspace.json").get_json()


def test_fleet_page_lists_every_target_and_shows_a_stopped_one_down(fleet_app):
    app, _one, two = fleet_app
    web = app.test_client()
    for name in ("cache", "queues"):
        wait_scan_of(web, name)
    data = web.get("/fleet.json").get_json()
    by_name = {t["name"]: t for t in data["targets"]}
    assert list(by_name) == ["cache", "queues"]
    assert all(t["state"] == "up" and t["version"] for t in by_name.values())
    assert (by_name["cache"]["keys"], by_name["queues"]["keys"]) == (2, 1)
    assert by_name["queues"]["last_scan"]["id"] and by_name["queues"]["audit"] is not None
    assert by_name["queues"]["links"]["keyspace"] == "/t/queues/keyspace"
    assert SECRET not in web.get("/fleet").get_data(as_text=True)
    assert SECRET not in str(data)
    assert web.get("/").get_data(as_text=True).count('data-target="') == 2  # / is the fleet
    two.stop()
    fleet = app.extensions["redis_dashboard_fleet"]
    fleet.states["queues"].observer.refresh("overview", timeout=10)
    data = web.get("/fleet.json").get_json()
    by_name = {t["name"]: t for t in data["targets"]}
    assert by_name["queues"]["state"] == "down" and by_name["queues"]["error"]
    assert by_name["cache"]["state"] == "up" and data["totals"]["down"] == 1
    assert web.get("/t/cache/overview.json").get_json()["freshness"]["state"] == "ok"
    assert web.get("/t/cache/keyspace.json").status_code == 200


def test_an_unknown_target_is_not_found(fleet_app):
    app, *_ = fleet_app
    assert app.test_client().get("/t/nope/keyspace").status_code == 404


def test_key_browser_search_and_server_pages_stay_within_their_target(fleet_app):
    app, _one, _two = fleet_app
    web = app.test_client()
    listing = web.get("/t/queues/keys.json").get_json()
    assert [k["key"] for k in listing["keys"]] == ["queue:x"]
    html = web.get("/t/queues/keys").get_data(as_text=True)
    links = [h for h in re.findall(r'href="(/[^"]*)"', html) if not h.startswith("/t/cache/")]
    assert 'href="/t/queues/key/queue:x"' in html
    assert all(h.startswith("/t/queues/") or h.startswith("/fleet") for h in links), links
    assert 'action="/t/queues/search"' in html
    found = web.get("/t/queues/search?q=queue:x")
    assert found.headers["Location"] == "/t/queues/key/queue:x"
    page = web.get("/t/queues/key/queue:x").get_data(as_text=True)
    assert 'id="key-type">string<' in page and 'href="/t/queues/key.json?k=' in page
    for path in ("/t/queues/info.json", "/t/queues/clients.json"):
        assert web.get(path).status_code == 200
    assert "keyspace" in json.dumps(web.get("/t/queues/info.json").get_json()["sections"])


# --- the CLI ------------------------------------------------------------------------------


def _cli(capsys, *argv):
    from dashboard.cli import main

    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_audit_reports_per_target_and_fails_if_any_target_fails(private_server, capsys, tmp_path):
    clean, dirty = private_server(), private_server()
    redis.Redis(port=dirty.port).set("lock:{x}", "t")  # a lock without a TTL: critical
    config = tmp_path / "audit.toml"  # a fresh test server's own criticals are not the point
    config.write_text("[rules.default-user-nopass]\nenabled = false\n")
    code, out, err = _cli(
        capsys, "audit", "--url", clean.url, "--url", dirty.url, "--format", "json",
        "--fail-on", "critical", "--config", str(config),
    )  # fmt: skip
    import json

    doc = json.loads(out)
    assert [t["name"] for t in doc["targets"]] == [
        f"127.0.0.1-{clean.port}",
        f"127.0.0.1-{dirty.port}",
    ]
    by_port = {t["url"]: t for t in doc["targets"]}
    assert by_port[clean.url]["report"]["summary"]["critical"] == 0
    assert by_port[dirty.url]["report"]["summary"]["critical"] >= 1
    assert doc["summary"]["critical"] == by_port[dirty.url]["report"]["summary"]["critical"]
    assert code == 1, err
    code, out, _ = _cli(
        capsys, "audit", "--url", clean.url, "--url", clean.url, "--fail-on", "critical",
        "--config", str(config),
    )  # fmt: skip
    assert code == 0 and out.count("== 127.0.0.1-") == 2


def test_audit_of_a_fleet_with_one_target_down_reports_the_others(private_server, capsys, tmp_path):
    from dashboard.embedded import free_port

    up = private_server()
    path = _toml(
        tmp_path,
        f"""
[[target]]
name = "up"
url = "{up.url}"

[[target]]
name = "down"
url = "redis://127.0.0.1:{free_port()}/0"
""",
    )
    code, out, _ = _cli(capsys, "audit", "--targets", path, "--format", "markdown")
    assert code == 2
    assert "## Target `up`" in out and "## Target `down`" in out
    assert "**Could not be audited:**" in out
    code, out, _ = _cli(capsys, "audit", "--targets", path, "--format", "sarif")
    import json

    runs = json.loads(out)["runs"]
    assert [r["automationDetails"]["id"] for r in runs] == ["redis-audit/up/", "redis-audit/down/"]
    assert runs[1]["invocations"][0]["executionSuccessful"] is False and code == 2


def test_keyspace_takes_one_url_and_a_bad_targets_file_is_one_line(capsys, tmp_path):
    code, _out, err = _cli(capsys, "keyspace", "--url", "redis://a:1/0", "--url", "redis://b:1/0")
    assert code == 2 and "give --url once" in err
    bad = _toml(tmp_path, '[[target]]\nname = "x"\nurl = "redis://x:1/0"\npassword_env = "NOPE"\n')
    code, _out, err = _cli(capsys, "audit", "--targets", bad)
    assert code == 2 and "NOPE" in err and len(err.strip().splitlines()) == 1


def test_a_fleet_of_standalone_cluster_and_sentinel(private_server, cluster, sentinel_set):
    """Three kinds of deployment side by side; one stops, the others keep working."""
    import time

    standalone = private_server()
    targets = [
        Target("plain", standalone.url),
        Target("sharded", cluster.url),
        Target("ha", sentinel_set.url),
    ]
    app = create_app({"rescan_interval": 0, "socket_timeout": 1, "connect_timeout": 1}, targets)
    try:
        web = app.test_client()
        data = web.get("/fleet.json").get_json()
        rows = {t["name"]: t for t in data["targets"]}
        assert all(rows[n]["state"] == "up" for n in rows), rows
        assert rows["sharded"]["mode"] == "cluster" and rows["ha"]["mode"] == "sentinel-managed"
        assert rows["plain"]["mode"] == "standalone" and rows["ha"]["role"] == "primary"
        assert all(rows[n]["version"] for n in rows)
        standalone.stop()
        began = time.monotonic()
        while time.monotonic() - began < 15:  # the page's own polling, as a browser does
            rows = {t["name"]: t for t in web.get("/fleet.json").get_json()["targets"]}
            if rows["plain"]["state"] == "down":
                break
            time.sleep(0.5)
        assert rows["plain"]["state"] == "down" and rows["plain"]["error"]
        assert rows["sharded"]["state"] == rows["ha"]["state"] == "up"
        for name in ("sharded", "ha"):
            assert web.get(f"/t/{name}/keyspace.json").status_code == 200
            assert web.get(f"/t/{name}/overview.json").get_json()["freshness"]["state"] == "ok"
    finally:
        app.extensions["redis_dashboard_fleet"].close()
