"""Stream ids and ACL refusals as hostile users and restricted accounts meet them."""

from __future__ import annotations

import pytest
import redis

from dashboard.keyid import encode_key

# Each passes a naive \d-regex but Redis rejects it: bad input, so 400 with the reason.
BAD_IDS = [
    "99999999999999999999",
    "18446744073709551616-0",
    "0-18446744073709551616",
    "\u0661\u0662\u0663-0",  # Arabic-Indic digits
    "\uff11\uff12-0",  # full-width digits
    "(18446744073709551615-18446744073709551615",  # exclusive start past the last id
]


@pytest.fixture
def stream(r):
    r.xadd("orders", {"n": 1}, id="1-1")
    r.xgroup_create("orders", "billing", id="0")
    r.xreadgroup("billing", "c1", {"orders": ">"})
    return encode_key(b"orders")


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize("param", ["start", "pstart"])
def test_stream_page_refuses_ids_redis_would_reject(web, stream, bad, param):
    reply = web.get("/stream.json", query_string={"k": stream, param: bad})
    assert reply.status_code == 400, reply.get_data(as_text=True)
    assert reply.get_json()["error"] == "Bad request"


@pytest.mark.parametrize("bad", [b for b in BAD_IDS if not b.startswith("(")])
def test_key_page_refuses_ids_redis_would_reject(web, stream, bad):
    reply = web.get("/key.json", query_string={"k": stream, "start": bad})
    assert reply.status_code == 400
    assert "start" in reply.get_json()["message"]


def test_the_largest_valid_id_is_accepted(web, stream):
    top = "18446744073709551615-18446744073709551615"
    for path, param in (("/stream.json", "start"), ("/key.json", "start")):
        reply = web.get(path, query_string={"k": stream, param: top, "order": "desc"})
        assert reply.status_code == 200, (path, reply.get_data(as_text=True))


def test_actions_refuse_out_of_range_ids(make_app, stream):
    web = make_app(allow_writes=True).test_client()
    with web.session_transaction() as session:
        session["csrf_token"] = "t"
    form = {"csrf_token": "t", "action": "ack", "k": stream, "group": "billing"}
    reply = web.post("/stream/action.json", data={**form, "ids": BAD_IDS[1], "confirm": "yes"})
    assert reply.status_code == 400


# --- ACL: name the command that was refused ------------------------------------------------


def test_acl_refusal_names_the_refused_command_not_the_page(private_server, make_app):
    server = private_server()
    admin = redis.Redis(port=server.port)
    admin.xadd("orders", {"n": 1})
    admin.xgroup_create("orders", "billing", id="0")
    admin.execute_command("ACL", "SETUSER", "viewer", "on", ">pw", "~*", "&*", "+@all", "-time")
    url = f"redis://viewer:pw@127.0.0.1:{server.port}/0"
    data = make_app(url=url).test_client().get("/streams.json").get_json()
    (orders,) = data["streams"]
    assert orders["error"].startswith("TIME refused by ACL"), orders["error"]
    assert "+time" in orders["error"]


def test_a_refused_xinfo_is_named_too(private_server, make_app):
    server = private_server()
    admin = redis.Redis(port=server.port)
    admin.xadd("orders", {"n": 1})
    admin.execute_command("ACL", "SETUSER", "viewer", "on", ">pw", "~*", "+@all", "-xinfo")
    url = f"redis://viewer:pw@127.0.0.1:{server.port}/0"
    data = make_app(url=url).test_client().get("/streams.json").get_json()
    assert all(s["error"].startswith("XINFO") for s in data["streams"]), data["streams"]


def test_describe_error_names_the_refused_command():
    from redis.exceptions import NoPermissionError

    from dashboard.inspect.errors import describe_error

    exc = NoPermissionError("this user has no permissions to run the 'time' command")
    assert describe_error("XINFO", exc).startswith("TIME refused by ACL")
    sub = NoPermissionError("User v has no permissions to run the 'config|get' command")
    assert describe_error("CONFIG GET", sub) == "CONFIG GET refused by ACL (NOPERM)"
    keys = NoPermissionError("this user has no permissions to access one of the keys used")
    assert "key" in describe_error("XINFO", keys)
