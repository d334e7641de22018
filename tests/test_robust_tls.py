"""TLS against a real redis-server (--tls-port, mutual TLS): what fails says why in Redis
terms, not in OpenSSL's ("EOF occurred in violation of protocol", "PEM lib")."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import pytest

from dashboard.embedded import free_port
from tests.test_robust_cli import run_cli

TLS = Path(__file__).parent / "tls"


@pytest.fixture
def mtls_port(private_server):
    """A private redis-server that asks every TLS client for a certificate."""
    port = free_port()
    private_server(
        "--tls-port", str(port),
        "--tls-cert-file", str(TLS / "server.pem"),
        "--tls-key-file", str(TLS / "server.key"),
        "--tls-ca-cert-file", str(TLS / "ca.pem"),
        "--tls-auth-clients", "yes",
    )  # fmt: skip
    return port


def _url(port: int, **options: str) -> str:
    query = urlencode({k: str(v) for k, v in options.items()})
    return f"rediss://127.0.0.1:{port}/0?{query}"


def test_mutual_tls_works_with_the_client_certificate(mtls_port):
    url = _url(
        mtls_port,
        ssl_ca_certs=TLS / "ca.pem",
        ssl_certfile=TLS / "client.pem",
        ssl_keyfile=TLS / "client.key",
    )
    done = run_cli("keyspace", "--url", url)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "options",
    [
        {"ssl_ca_certs": TLS / "ca.pem"},  # no client certificate at all
        {"ssl_ca_certs": TLS / "ca.pem", "ssl_cert_reqs": "none"},
        {  # one the server does not trust
            "ssl_ca_certs": TLS / "ca.pem",
            "ssl_certfile": TLS / "rogue.pem",
            "ssl_keyfile": TLS / "rogue.key",
        },
    ],
)
def test_a_missing_or_untrusted_client_certificate_is_named(mtls_port, options):
    done = run_cli("keyspace", "--url", _url(mtls_port, **options))
    assert done.returncode == 2
    assert "client certificate" in done.stderr and "ssl_certfile" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_an_untrusted_server_certificate_says_ssl_ca_certs(mtls_port):
    done = run_cli("keyspace", "--url", _url(mtls_port))
    assert done.returncode == 2
    assert "ssl_ca_certs" in done.stderr and "server's certificate" in done.stderr


def test_pages_say_the_same(mtls_port, make_app):
    web = make_app(url=_url(mtls_port, ssl_ca_certs=TLS / "ca.pem")).test_client()
    reply = web.get("/key.json?k=YQ")
    assert reply.status_code == 503
    assert "client certificate" in reply.get_json()["message"]
    assert "client certificate" in web.get("/overview").get_data(as_text=True)
