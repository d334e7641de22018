"""A Redis URL is checked once, up front: a password that would leak into the host, an
option nobody reads and a TLS option that cannot work are one clear line (exit 2 on the
CLI, a 503 with the reason on pages), and nothing is looked up or sent before that."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from dashboard.connection import ConnectionConfigError, ConnectionOptions, check_url, connect
from tests.test_robust_cli import run_cli

TLS = Path(__file__).parent / "tls"

# The password is "8642/xY" (or with ? or #), unencoded: everything after the / ? #
# would be path, query or fragment, and "bob:8642" the host and port.
LEAKY = [
    "redis://bob:8642/xY@127.0.0.1:6379/0",
    "redis://bob:8642?xY@127.0.0.1:6379/0",
    "redis://bob:8642#xY@127.0.0.1:6379/0",
    "redis://:8642/xY@127.0.0.1:6379/0",
    "rediss://bob:8642/xY@127.0.0.1:6379/0",
    "redis://bob:8642?ssl=xY@127.0.0.1:6379/0",
    "redis+cluster://bob:8642/xY@127.0.0.1:7000",
    "redis+sentinel://bob:8642/xY@127.0.0.1:26379/mymaster",
    "unix://bob:8642/xY@/tmp/redis.sock",
]


@pytest.fixture
def no_lookups(monkeypatch):
    """Fail the test on any DNS lookup or connection attempt made by the test's own
    thread (other tests' background readers may still be polling their servers)."""
    seen = []
    me = threading.get_ident()

    def refusing(real):
        def refuse(*args, **kwargs):
            if threading.get_ident() != me:
                return real(*args, **kwargs)
            seen.append(args)
            raise AssertionError(f"looked up {args[0]!r}")

        return refuse

    monkeypatch.setattr(socket, "getaddrinfo", refusing(socket.getaddrinfo))
    monkeypatch.setattr(socket, "create_connection", refusing(socket.create_connection))
    return seen


@pytest.mark.parametrize("url", LEAKY)
def test_a_password_that_would_become_the_host_is_refused_quoting_nothing(url, no_lookups):
    with pytest.raises(ConnectionConfigError) as err:
        connect(url)
    message = str(err.value)
    assert "8642" not in message and "xY" not in message and "bob" not in message
    assert "percent-encode" in message
    assert not no_lookups


@pytest.mark.parametrize(
    "url",
    [
        "redis://:p%2Fw%3F%23@127.0.0.1:6379/0",
        "redis://user:p@ss@127.0.0.1:6379/0",  # the last @ ends the user information
        "redis+sentinel://127.0.0.1:26379/mymaster?sentinel_password=p@ss",
        "redis://127.0.0.1:6379/0?password=p@ss&client_name=me",
        "unix:///run/redis@6379.sock?db=2",
        "unix://:pw@/tmp/redis.sock",
    ],
)
def test_urls_with_an_at_where_it_belongs_are_accepted(url, no_lookups):
    check_url(url)
    if not url.startswith("redis+sentinel"):
        connect(url).close()


def test_the_cli_refuses_a_leaky_url_in_one_line_without_quoting_it():
    done = run_cli("keyspace", "--url", LEAKY[0])
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    errors = [line for line in lines if not line.startswith("redis-dashboard: warning:")]
    assert len(errors) == 1, lines  # (and the warning that a password was on the argv)
    assert "8642" not in done.stderr + done.stdout and "xY" not in done.stderr


def test_pages_refuse_a_leaky_url_without_quoting_it(make_app):
    web = make_app(url=LEAKY[1]).test_client()
    for path in ("/overview.json", "/overview", "/streams.json", "/key.json?k=YQ"):
        reply = web.get(path)
        assert reply.status_code == 503, path
        assert b"8642" not in reply.data and b"xY" not in reply.data
    assert web.get("/healthz").get_json() == {"status": "ok", "redis": "unreachable"}


@pytest.mark.parametrize(
    "url, named",
    [
        ("redis://127.0.0.1:6379/0?timeout=5", "timeout"),
        ("redis://127.0.0.1:6379/0?ssl_cert_reqs=none", "rediss://"),
        ("redis://127.0.0.1:6379/0?db=x", "db"),
        ("redis://127.0.0.1:6379/0?socket_timeout=-1", "socket_timeout"),
        ("redis://127.0.0.1:6379/0?protocol=4", "protocol"),
        ("rediss://127.0.0.1:6379/0?ssl_cert_reqs=bogus", "ssl_cert_reqs"),
        ("rediss://127.0.0.1:6379/0?ssl_check_hostname=perhaps", "ssl_check_hostname"),
        ("redis+cluster://127.0.0.1:7000?db=1", "db"),
        ("redis+sentinel://127.0.0.1:26379/m?max_connections=3", "max_connections"),
    ],
)
def test_unknown_or_bad_options_are_refused_by_name(url, named, no_lookups):
    with pytest.raises(ConnectionConfigError, match=named):
        connect(url)


@pytest.mark.parametrize("command", ["audit", "keyspace"])
@pytest.mark.parametrize("query", ["timeout=5", "ssl_cert_reqs=none", "ssl_cert_reqs=bogus&x=1"])
def test_cli_bad_options_exit_2_with_one_line(command, query):
    scheme = "rediss" if "bogus" in query else "redis"
    done = run_cli(command, "--url", f"{scheme}://127.0.0.1:1/0?{query}")
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr


def test_serve_checks_the_url_before_it_starts():
    done = run_cli("serve", "--port", "1", "--url", "redis://127.0.0.1:6379/0?timeout=5")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "timeout" in done.stderr


def test_pages_and_healthz_survive_an_unknown_option(make_app):
    web = make_app(url="redis://127.0.0.1:6379/0?timeout=5").test_client()
    assert web.get("/healthz").status_code == 200
    reply = web.get("/overview.json")
    assert reply.status_code == 503 and "timeout" in reply.get_json()["message"]


# --- TLS files ---------------------------------------------------------------------------


def _tls(**files) -> ConnectionOptions:
    return ConnectionOptions(**{k: str(v) for k, v in files.items()})


@pytest.mark.parametrize(
    "files, named",
    [
        ({"ssl_certfile": TLS / "client.pem"}, "client.pem"),  # a certificate without its key
        ({"ssl_certfile": TLS / "client.pem", "ssl_keyfile": TLS / "rogue.key"}, "rogue.key"),
        ({"ssl_certfile": TLS / "client.key", "ssl_keyfile": TLS / "client.key"}, "client.key"),
        ({"ssl_certfile": TLS / "client.pem", "ssl_keyfile": TLS / "ca.pem"}, "ca.pem"),
        ({"ssl_ca_certs": TLS / "client.key"}, "client.key"),
        ({"ssl_ca_certs": TLS / "missing.pem"}, "missing.pem"),
        ({"ssl_keyfile": TLS / "client.key"}, "ssl_certfile"),
    ],
)
def test_tls_files_are_loaded_up_front_and_the_wrong_one_named(files, named, no_lookups):
    with pytest.raises(ConnectionConfigError) as err:
        connect("rediss://127.0.0.1:6379/0", _tls(**files))
    assert named in str(err.value)
    assert "PEM lib" not in str(err.value)


def test_good_tls_files_pass(no_lookups):
    options = _tls(
        ssl_ca_certs=TLS / "ca.pem", ssl_certfile=TLS / "client.pem", ssl_keyfile=TLS / "client.key"
    )
    connect("rediss://127.0.0.1:6379/0", options).close()


def test_cli_names_the_certificate_without_a_key():
    url = f"rediss://127.0.0.1:1/0?ssl_certfile={TLS / 'client.pem'}"
    done = run_cli("audit", "--url", url)
    assert done.returncode == 2 and "private key" in done.stderr and "PEM lib" not in done.stderr


def test_every_url_option_is_documented():
    from dashboard.urlcheck import OPTIONS, TLS_OPTIONS

    doc = (Path(__file__).parent.parent / "docs" / "settings.md").read_text()
    section = doc.split("### URL options", 1)[1]
    for name in {*TLS_OPTIONS, *(o for kind in OPTIONS.values() for o in kind)}:
        assert f"`{name}`" in section, f"URL option {name} is not in docs/settings.md"
