"""The issue's acceptance run on a real ``redis-dashboard serve``: scan, add 50,000 keys
to one namespace, re-scan; the compare view and its twin show the growth; restart the
dashboard and the same comparison is still there."""

import http.cookiejar
import json
import re
import time
import urllib.parse
import urllib.request


class Browser:
    """Enough of a browser for a CSRF-protected POST: cookies and the page's token."""

    def __init__(self, base):
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def get(self, path):
        with self.opener.open(self.base + path, timeout=30) as response:
            return response.read().decode()

    def json(self, path):
        return json.loads(self.get(path))

    def post(self, path, form):
        page = self.get("/keyspace")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        data = urllib.parse.urlencode({**form, "csrf_token": token}).encode()
        request = urllib.request.Request(
            self.base + path, data=data, headers={"Accept": "application/json"}
        )
        with self.opener.open(request, timeout=30) as response:
            return json.loads(response.read())


def _until(check, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_compare_after_growth_and_after_a_restart(live_server, r, tmp_path):
    state = str(tmp_path / "serve.sqlite")
    for i in range(200):
        r.set(f"orders:{i}", "o" * 40)
        r.set(f"users:{i}", "u" * 40)
    browser = Browser(live_server(state=state, rescan_interval=0))
    first = _until(lambda: browser.json("/keyspace.json")["scan"])
    pipe = r.pipeline(transaction=False)
    for i in range(200, 50_200):
        pipe.set(f"orders:{i}", "o" * 40)
    pipe.execute()
    assert browser.post("/keyspace/scan", {"action": "rescan"})["state"] in ("running", "idle")

    def compared():
        data = browser.json("/compare.json")
        return data if (data["b"] or {}).get("id") not in (None, first["id"]) else None

    data = _until(compared)
    orders = next(n for n in data["namespaces"] if n["namespace"] == "orders")
    assert orders["keys_delta"] == 50_000
    assert orders["bytes_delta"] > 50_000 * 40  # each key costs more than its value
    assert data["a"]["id"] == first["id"]
    html = browser.get("/compare")
    assert 'data-namespace="orders" data-status="grown"' in html and "+50,000" in html

    process = live_server.started[-1]
    process.terminate()
    process.wait(timeout=20)
    again = Browser(live_server(state=state, rescan_interval=0))
    same = again.json(f"/compare.json?a={data['a']['id']}&b={data['b']['id']}")
    assert same["namespaces"] == data["namespaces"] and same["totals"] == data["totals"]
    stored = [s["id"] for s in again.json("/history.json")["scans"]]
    assert data["a"]["id"] in stored and data["b"]["id"] in stored
