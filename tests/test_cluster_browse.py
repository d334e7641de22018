"""The key browser, bulk fixes, server tables and streams on the suite's real cluster
(3 primaries, 3 replicas)."""

from observer_support import observer_of
from write_support import csrf, wait_job

from dashboard.keyid import encode_key


def test_cluster_browse_bulk_tables_and_streams(cluster, cluster_client, make_app):
    servers, real = cluster.primaries(), cluster
    cluster = cluster_client
    for i in range(400):
        cluster.set(f"user:{i}:profile", "v")
        cluster.set(f"session:{i}", "v")
    for i in range(6):
        cluster.xadd(f"orders:{i}", {"n": i})
        cluster.xgroup_create(f"orders:{i}", "billing", id="0")
    nodes = {f"127.0.0.1:{s.port}" for s in servers}
    web = make_app(
        url=real.url,
        allow_writes=True,
        browse_scan_keys=200,
        rescan_interval=0,
    ).test_client()
    # the key browser walks every primary with a cursor per node
    url, seen, pages = "/keys.json?match=user:*", [], 0
    while True:
        page = web.get(url).get_json()
        seen += page["keys"]
        pages += 1
        if not page["next"]:
            break
        url = f"/keys.json?match=user:*&cursor={page['next']}&seen={page['examined_total']}"
    assert len({k["key"] for k in seen}) == 400 and pages > 1
    assert {k["node"] for k in seen} == nodes and page["nodes"] == 3
    assert page["dbsize"] == 800 + 6 and web.get("/keys.json?db=1").status_code == 400
    # server tables cover both nodes
    observer_of(web).refresh("info")
    assert set(web.get("/info.json").get_json()["nodes"]) == nodes
    observer_of(web).refresh("clients")
    assert {c["node"] for c in web.get("/clients.json").get_json()["idle"]} == nodes
    # streams: pipelined per node
    observer_of(web).refresh("streams", "*")
    rows = web.get("/streams.json").get_json()["rows"]
    assert len(rows) == 6 and {r["node"] for r in rows} == nodes and rows[0]["lag"] == 1
    # bulk: a TTL on every session:* key, on both nodes
    token = csrf(web)
    form = {
        "csrf_token": token,
        "rule": "missing-ttl",
        "ns": encode_key(b"session"),
        "ttl": "600",
    }
    dry = wait_job(web, web.post("/bulk/dryrun.json", data=form).get_json()["job"]["id"])
    assert dry["would_change"] == 400
    job = web.post(
        "/bulk/apply.json", data={"csrf_token": token, "job": dry["id"], "confirm": "yes"}
    ).get_json()["job"]
    done = wait_job(web, job["id"])
    assert done["state"] == "done" and done["changed"] == 400
    assert all(0 < cluster.ttl(f"session:{i}") <= 600 for i in range(400))
    assert cluster.ttl("user:1:profile") == -1
