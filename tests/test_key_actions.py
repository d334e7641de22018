"""Write actions on one key: confirm first, writes enabled only, logged."""

import pytest
from write_support import csrf, writes_seen

from dashboard.keyid import encode_key

BINARY = b"odd:\xff<b>"


def _post(client, token, key, **form):
    return client.post("/key/action.json", data={"csrf_token": token, "k": encode_key(key), **form})


@pytest.mark.parametrize("action", ["delete", "expire", "persist"])
def test_read_only_refuses_and_sends_nothing(web, r, action):
    r.set(BINARY, "v", ex=100)
    token = csrf(web)
    before = writes_seen(r)
    for form in ({}, {"confirm": "0" * 16}):
        answer = _post(web, token, BINARY, action=action, ttl="60", **form)
        assert answer.status_code == 403 and "--allow-writes" in answer.get_json()["message"]
    assert writes_seen(r) == before and r.ttl(BINARY) > 0
    html = web.get(f"/key?k={encode_key(BINARY)}").get_data(as_text=True)
    assert 'id="actions-unavailable"' in html and "disabled" in html


def test_set_ttl_remove_ttl_and_delete_after_confirming(make_app, r):
    client = make_app(allow_writes=True).test_client()
    token = csrf(client)
    r.set(BINARY, "v")
    step1 = _post(client, token, BINARY, action="expire", ttl="120")
    assert step1.status_code == 200 and r.ttl(BINARY) == -1  # nothing before confirming
    seen = step1.get_json()
    assert seen["new_ttl_s"] == 120 and seen["cli"] == '"odd:\\xff<b>"'
    done = _post(client, token, BINARY, action="expire", ttl="120", confirm=seen["confirm"])
    assert done.status_code == 200 and 0 < r.ttl(BINARY) <= 120
    code = _post(client, token, BINARY, action="persist").get_json()["confirm"]
    assert _post(client, token, BINARY, action="persist", confirm=code).status_code == 200
    assert r.ttl(BINARY) == -1
    code = _post(client, token, BINARY, action="delete").get_json()["confirm"]
    assert _post(client, token, BINARY, action="delete", confirm=code).status_code == 200
    assert not r.exists(BINARY)
    log = client.get("/writes.json").get_json()["writes"]
    assert [w["action"] for w in log] == ["delete", "persist", "expire"]
    assert all(w["ok"] and w["who"].startswith("anonymous@") and w["at"] for w in log)
    assert log[0]["subject"] == '"odd:\\xff<b>"'


def test_a_key_that_changed_since_confirming_is_left_alone(make_app, r):
    client = make_app(allow_writes=True).test_client()
    token = csrf(client)
    r.set("k", "v")
    code = _post(client, token, b"k", action="delete").get_json()["confirm"]
    r.delete("k")
    r.rpush("k", "now a list")
    answer = _post(client, token, b"k", action="delete", confirm=code)
    assert answer.status_code == 409 and r.type("k") == b"list"
    assert client.get("/writes.json").get_json()["writes"][0]["ok"] is False


def test_bad_requests(make_app, r):
    client = make_app(allow_writes=True).test_client()
    token = csrf(client)
    r.set("k", "v")
    assert _post(client, token, b"k", action="expire", ttl="-5").status_code == 400
    assert _post(client, token, b"k", action="expire", ttl="soon").status_code == 400
    assert _post(client, token, b"k", action="rename").status_code == 400
    assert _post(client, token, b"gone", action="delete").status_code == 404
    assert _post(client, token, b"k", action="persist").status_code == 409  # no TTL to remove
    no_csrf = client.post("/key/action.json", data={"k": encode_key(b"k"), "action": "delete"})
    assert no_csrf.status_code == 400 and r.exists("k")


def test_html_confirmation_then_redirect(make_app, r):
    client = make_app(allow_writes=True).test_client()
    token = csrf(client)
    r.set("user:1", "v")
    page = client.post(
        "/key/action", data={"csrf_token": token, "name": "user:1", "action": "delete"}
    )
    text = page.get_data(as_text=True)
    assert 'id="confirm-summary"' in text and "UNLINK" in text and r.exists("user:1")
