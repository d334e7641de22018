from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from dashboard.connection import (
    ConnectionConfigError,
    ConnectionOptions,
    connect,
    is_cluster,
    mask_url,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://alice:s3cret@host/1", "redis://alice:***@host/1"),
        ("rediss://alice:p%40ss@h:6380", "rediss://alice:***@h:6380"),
        ("redis://host:6379", "redis://host:6379"),
        (
            "redis+sentinel://:pw@s1:26379,s2:26379/mymaster",
            "redis+sentinel://:***@s1:26379,s2:26379/mymaster",
        ),
        ("unix:///tmp/redis.sock?db=2", "unix:///tmp/redis.sock?db=2"),
    ],
)
def test_mask_url_never_shows_password(url, expected):
    assert mask_url(url) == expected
    assert "s3cret" not in mask_url(url)


@pytest.mark.parametrize(
    "url",
    ["localhost:6379", "http://localhost", "", "redis+cluster://", "redis+sentinel://h:1"],
)
def test_malformed_urls_get_clear_errors(url):
    with pytest.raises(ConnectionConfigError) as info:
        connect(url)
    message = str(info.value)
    # the message quotes what was given (masked) and says what was expected instead
    assert any(word in message for word in ("expected", "use one of", "needs", "missing", "no "))
    assert len(message) > len(url) + 10


def test_error_message_masks_password():
    with pytest.raises(ConnectionConfigError) as info:
        connect("ftp://bob:hunter2@host")
    assert "hunter2" not in str(info.value)
    assert "***" in str(info.value)


def test_standalone_client_options(redis_server):
    client = connect(
        redis_server.url,
        ConnectionOptions(
            pool_size=3, socket_timeout=1.5, connect_timeout=0.5, client_name="t-dash"
        ),
    )
    try:
        assert client.ping()
        kwargs = client.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == 1.5
        assert kwargs["socket_connect_timeout"] == 0.5
        assert client.connection_pool.max_connections == 3
        name = client.client_getname()
        assert (name.decode() if isinstance(name, bytes) else name) == "t-dash"
        assert not is_cluster(client)
    finally:
        client.close()


def test_unix_socket_url(private_server, tmp_path):
    sock = tmp_path / "r.sock"
    server = private_server("--unixsocket", str(sock), "--unixsocketperm", "700")
    client = connect(f"unix://{sock}?db=3")
    try:
        client.set("x", 1)
        assert redis.Redis(port=server.port, db=3).get("x") == b"1"
    finally:
        client.close()


def test_tls_options_pass_through():
    ca = str(Path(__file__).parent / "tls" / "ca.pem")
    client = connect("rediss://h:6380/0?ssl_cert_reqs=none", ConnectionOptions(ssl_ca_certs=ca))
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["ssl_ca_certs"] == ca
    assert kwargs["ssl_cert_reqs"] == "none"


def test_cluster_url_builds_cluster_client(monkeypatch):
    seen = {}

    def fake_init(self, startup_nodes=None, url=None, **kwargs):
        seen["nodes"] = [url] + [(n.host, n.port) for n in startup_nodes]
        seen["kwargs"] = kwargs

    monkeypatch.setattr(RedisCluster, "__init__", fake_init)
    client = connect("redis+cluster://u:pw@n1:7000,n2:7001", ConnectionOptions(pool_size=4))
    assert is_cluster(client)
    assert seen["nodes"] == ["redis://n1:7000", ("n2", 7001)]
    assert seen["kwargs"]["password"] == "pw"
    assert seen["kwargs"]["username"] == "u"
    assert seen["kwargs"]["max_connections"] == 4


def test_sentinel_url_parses_service_and_db(monkeypatch):
    from redis import sentinel as sentinel_mod

    seen = {}

    class FakeSentinel:
        def __init__(self, nodes, sentinel_kwargs=None, **kwargs):
            seen.update(nodes=nodes, sentinel_kwargs=sentinel_kwargs, kwargs=kwargs)

        def master_for(self, service, **kwargs):
            seen["service"] = service
            return "client"

    monkeypatch.setattr("dashboard.connection.Sentinel", FakeSentinel)
    assert sentinel_mod.Sentinel is not FakeSentinel  # only our module's name was swapped
    out = connect("redis+sentinel://:pw@s1,s2:26380/mymaster/2?sentinel_password=spw")
    assert out == "client"
    assert seen["nodes"] == [("s1", 26379), ("s2", 26380)]
    assert seen["service"] == "mymaster"
    assert seen["kwargs"]["db"] == 2
    assert seen["kwargs"]["password"] == "pw"
    assert seen["sentinel_kwargs"]["password"] == "spw"


def test_unreachable_server_raises_connection_error():
    client = connect("redis://127.0.0.1:1/0", ConnectionOptions(connect_timeout=0.5))
    with pytest.raises(redis.ConnectionError):
        client.ping()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # unencoded / ? # in the password: the text up to the last @ is user information
        ("redis://:Ab3/xYz9@redis.internal:6379/0", "redis://:***@redis.internal:6379/0"),
        ("redis://:Ab3?x#y@redis.internal:6379/0", "redis://:***@redis.internal:6379/0"),
        ("redis://u:p@ss@host:6379", "redis://u:***@host:6379"),
        ("redis://u:p@s@s@host:6379/2", "redis://u:***@host:6379/2"),
        ("redis://u:Ab3:xYz9@host", "redis://u:***@host"),  # a colon in the password
        ("redis://onlyuser@host", "redis://***@host"),  # a lone token may be a password
        ("redis://onlyuser@host:6379/0", "redis://***@host:6379/0"),  # port's colon: not it
        ("redis://:Ab3://xYz9@host", "redis://:***@host"),  # :// inside the password
        ("redis://:Ab3?password=@host", "redis://:***"),  # two secrets that touch: one ***
        ("redis://host:6379/0?password=Ab3xYz9", "redis://host:6379/0?password=***"),
        (
            "redis+sentinel://s1:26379/mymaster?sentinel_password=Ab3xYz9&x=1",
            "redis+sentinel://s1:26379/mymaster?sentinel_password=***&x=1",
        ),
        (
            "redis://h/0?db=1&PASSWORD=Ab3;sentinel_password=xYz9#frag",
            "redis://h/0?db=1&PASSWORD=***;sentinel_password=***#frag",
        ),
        # an @ in a query password is not the end of user information (found by
        # tests/test_properties.py: this once printed "redis://h:***@xYz9")
        ("redis://h:1/0?password=Ab3@xYz9", "redis://h:***"),
        # ambiguous (which @ ends the user information?): hidden whole, never in part
        (
            "redis://:Ab3@h/0?sentinel_password=p@xYz9&db=1",
            "redis://:***&db=1",
        ),
    ],
)
def test_mask_url_masks_awkward_passwords(url, expected):
    masked = mask_url(url)
    assert masked == expected
    assert "Ab3" not in masked and "xYz9" not in masked and "p@s" not in masked


def test_parse_error_does_not_quote_the_password():
    with pytest.raises(ConnectionConfigError) as info:
        connect("redis://:Ab3/xYz9@redis.internal:6379/0")
    assert "Ab3" not in str(info.value) and "xYz9" not in str(info.value)
    assert "percent-encode" in str(info.value)
