"""Client factory: one place that turns a URL and a few options into a client.

Supported URLs (the scheme says which kind of deployment you have):

* ``redis://[[user]:password@]host[:port][/db]`` — a standalone server.
* ``rediss://...`` — the same over TLS; options ``ssl_ca_certs``, ``ssl_certfile``,
  ``ssl_keyfile``, ``ssl_cert_reqs`` (``required``/``optional``/``none``) and
  ``ssl_check_hostname`` go in the query string or in :class:`ConnectionOptions`.
* ``unix:///path/to/redis.sock[?db=0]`` — a local socket.
* ``redis+cluster://host:port[,host2:port2...]`` (``rediss+cluster://`` for TLS) —
  Redis Cluster: the listed nodes are start-up nodes, the rest is discovered.
* ``redis+sentinel://[[user]:password@]host:26379[,host2:26379...]/service[/db]``
  (``rediss+sentinel://`` for TLS to the data nodes) — the primary of ``service``
  as the Sentinels report it. The URL's credentials are for the data nodes; give
  ``?sentinel_username=...&sentinel_password=...`` when the Sentinels need their own.

The password is never shown: :func:`mask_url` is what logs and pages print.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import AbstractBackoff, ExponentialWithJitterBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel

from dashboard import deadline
from dashboard.pool import DashboardPool, SentinelDashboardPool, redis_client
from dashboard.urlcheck import (
    ConnectionConfigError,
    check_query,
    check_userinfo,
    tls_kwargs,
)

DEFAULT_CLIENT_NAME = "redis-dashboard"
RETRIES = 2
_SCHEMES = {
    "redis",
    "rediss",
    "unix",
    "redis+cluster",
    "rediss+cluster",
    "redis+sentinel",
    "rediss+sentinel",
}
_TLS_KEYS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname")


@dataclass(frozen=True)
class ConnectionOptions:
    """Options that apply to every kind of deployment."""

    pool_size: int = 16
    socket_timeout: float = 5.0
    connect_timeout: float = 3.0
    client_name: str = DEFAULT_CLIENT_NAME
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_cert_reqs: str | None = None
    ssl_check_hostname: bool | None = None


_SECRET_PARAM = re.compile(r"([?&;][^=&;#]*password[^=&;#]*=)([^&;#]*)", re.IGNORECASE)


def mask_url(url: str) -> str:
    """Return ``url`` with every password replaced by ``***`` (safe to log and display).

    Works on the raw text, not a parsed URL: a password with an unencoded ``/``, ``?``
    or ``#`` would otherwise end up in the "path" and be shown. Everything between
    ``://`` and the last ``@`` is user information; query parameters whose name
    contains ``password`` (``password``, ``sentinel_password``) are masked too. Both
    are found in the original text and every character either covers is hidden, so a
    query password holding an ``@`` cannot pass for the end of the user information.
    """
    text = str(url)
    spans = [m.span(2) for m in _SECRET_PARAM.finditer(text)]
    scheme, sep, rest = text.partition("://")
    if sep and "@" in rest:
        start = len(scheme) + len(sep)
        end = start + rest.rindex("@")
        colon = text.find(":", start, end)
        spans.append((start if colon < 0 else colon + 1, end))
    merged: list[list[int]] = []
    for begin, finish in sorted(spans):
        if merged and begin <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], finish)
        else:
            merged.append([begin, finish])
    out, pos = [], 0
    for begin, finish in merged:
        out += [text[pos:begin], "***"]
        pos = finish
    out.append(text[pos:])
    return "".join(out)


def _scheme(url: str) -> str:
    if not isinstance(url, str) or "://" not in url:
        raise ConnectionConfigError(
            f"not a Redis URL: {mask_url(str(url))!r} (expected e.g. redis://localhost:6379/0)"
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme not in _SCHEMES:
        raise ConnectionConfigError(
            f"unsupported scheme {scheme!r} in {mask_url(url)!r}; use one of "
            + ", ".join(sorted(_SCHEMES))
        )
    return scheme


def _tls_kwargs(query: dict[str, str], options: ConnectionOptions) -> dict[str, Any]:
    """TLS options from ``options``, else from the URL; checked and their files loaded."""
    given = {}
    for name in _TLS_KEYS:
        value = getattr(options, name)
        given[name] = query.get(name) if value is None else value
    return tls_kwargs(given)


class DeadlineBackoff(AbstractBackoff):
    """redis-py's exponential backoff between retries, never sleeping past the deadline."""

    def __init__(self) -> None:
        self._inner = ExponentialWithJitterBackoff(cap=0.5, base=0.01)

    def reset(self) -> None:
        self._inner.reset()

    def compute(self, failures: int) -> float:
        left = deadline.remaining()
        wait = self._inner.compute(failures)
        return wait if left is None else max(0.0, min(wait, left))


def _retry() -> Retry:
    """Two retries on a lost connection or a timeout (redis-py 8's default is ten, with a
    backoff up to a second each: a stalled server held a page for a minute)."""
    return Retry(DeadlineBackoff(), RETRIES)


def _common_kwargs(options: ConnectionOptions) -> dict[str, Any]:
    return {
        "socket_timeout": options.socket_timeout,
        "socket_connect_timeout": options.connect_timeout,
        "client_name": options.client_name,
    }


def _split_nodes(netloc_hosts: str, default_port: int, url: str) -> list[tuple[str, int]]:
    nodes = []
    for item in netloc_hosts.split(","):
        host, _, port = item.strip().rpartition(":") if ":" in item else (item, "", "")
        host = host.strip("[]") or item.strip()
        try:
            nodes.append((host, int(port) if port else default_port))
        except ValueError as exc:
            raise ConnectionConfigError(f"bad port {port!r} in {mask_url(url)!r}") from exc
    if not nodes or not all(h for h, _ in nodes):
        raise ConnectionConfigError(f"no host in {mask_url(url)!r}")
    return nodes


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _credentials(netloc: str) -> tuple[str | None, str | None, str]:
    if "@" not in netloc:
        return None, None, netloc
    userinfo, _, hosts = netloc.rpartition("@")
    user, sep, password = userinfo.partition(":")
    return (unquote(user) or None, unquote(password) if sep else None, hosts)


def _checked(url: str, options: ConnectionOptions) -> tuple[str, Any, dict[str, Any]]:
    """The scheme, the split URL and the TLS options, all checked (nothing looked up)."""
    if options.pool_size < 1:
        raise ConnectionConfigError("pool_size must be at least 1")
    scheme = _scheme(url)
    check_userinfo(scheme, url)  # before anything quotes or looks up a piece of the URL
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConnectionConfigError(f"malformed URL {mask_url(url)!r}: {exc}") from exc
    query = check_query(scheme, parts.query)
    tls = _tls_kwargs(query, options) if scheme.startswith("rediss") else {}
    return scheme, parts, {"query": query, "tls": tls}


def check_url(url: str, options: ConnectionOptions | None = None) -> None:
    """Everything :func:`connect` checks, without building a client (a cluster client
    connects as it is built): run it at start-up so a bad URL is one line, exit 2.

    Raises :class:`ConnectionConfigError`; its message never quotes a password.
    """
    _checked(url, options or ConnectionOptions())


def connect(url: str, options: ConnectionOptions | None = None) -> Any:
    """Build a client for ``url``. Nothing is sent to Redis until the first command.

    Returns a :class:`redis.Redis` (standalone, sentinel) or :class:`RedisCluster`.
    Raises :class:`ConnectionConfigError` with a masked URL on malformed input.
    """
    options = options or ConnectionOptions()
    scheme, parts, checked = _checked(url, options)
    query, tls_options = checked["query"], checked["tls"]
    tls = scheme.startswith("rediss")
    common = _common_kwargs(options)
    if scheme in {"redis", "rediss", "unix"}:
        kwargs = {**common, "max_connections": options.pool_size, "retry": _retry()}
        if tls:
            kwargs.update(tls_options)
        try:
            return redis_client(DashboardPool.from_url(url, **kwargs))
        except ValueError:
            # redis-py's message may quote a piece of the password (as the "port").
            raise ConnectionConfigError(
                f"cannot parse {mask_url(url)!r}: check host, port and database, and "
                "percent-encode special characters (/ ? # @ :) in the password"
            ) from None
    user, password, hosts = _credentials(parts.netloc)
    if scheme.endswith("+cluster"):
        nodes = _split_nodes(hosts, 6379, url)
        kwargs = {**common, "max_connections": options.pool_size}
        if tls:
            kwargs["ssl"] = True
            kwargs.update(tls_options)
        (host, port), *others = nodes
        return RedisCluster(
            # redis-py builds node pools from connection_pool_class only for a url
            url=f"{'rediss' if tls else 'redis'}://{_host(host)}:{port}",
            startup_nodes=[ClusterNode(h, p) for h, p in others],
            username=user,
            password=password,
            connection_pool_class=DashboardPool,
            **kwargs,
        )
    # sentinel: path is /service[/db]
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ConnectionConfigError(
            f"sentinel URL needs a service name: {mask_url(url)!r} "
            "(redis+sentinel://host:26379/mymaster[/db])"
        )
    service = unquote(path[0])
    try:
        db = int(path[1]) if len(path) > 1 else 0
    except ValueError as exc:
        raise ConnectionConfigError(f"bad database number in {mask_url(url)!r}") from exc
    nodes = _split_nodes(hosts, 26379, url)
    data_kwargs = {**common, "db": db, "username": user, "password": password, "retry": _retry()}
    if tls:
        data_kwargs["ssl"] = True
        data_kwargs.update(tls_options)
    sentinel = Sentinel(
        nodes,
        sentinel_kwargs={
            "socket_timeout": options.socket_timeout,
            "socket_connect_timeout": options.connect_timeout,
            # Sentinels usually have their own (or no) credentials.
            "username": query.get("sentinel_username"),
            "password": query.get("sentinel_password"),
        },
        **data_kwargs,
    )
    return sentinel.master_for(
        service, connection_pool_class=SentinelDashboardPool, max_connections=options.pool_size
    )


_CLIENT_CERT = (
    "give ssl_certfile and ssl_keyfile (a client certificate signed by a CA in the "
    "server's tls-ca-cert-file)"
)
# What OpenSSL says (lower case) -> what it means for someone connecting to Redis.
_TLS_HINTS = (
    ("certificate required", "the server asks for a client certificate (mutual TLS): "
     + _CLIENT_CERT),
    ("eof occurred in violation of protocol", "the server ended the TLS handshake, most "
     "likely because it asks for a client certificate (mutual TLS) and got none it "
     "accepts: " + _CLIENT_CERT),
    ("unknown ca", "the server does not trust the client certificate: " + _CLIENT_CERT),
    ("bad certificate", "the server refused the client certificate: " + _CLIENT_CERT),
    ("certificate verify failed", "the server's certificate is not trusted: give ssl_ca_certs "
     "(the CA file that signed it), or ssl_cert_reqs=none to skip the check (not recommended)"),
    ("wrong version number", "the server does not speak TLS on this port: use redis:// or "
     "the server's tls-port"),
)  # fmt: skip
_URL_TEXT = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)


def mask_urls_in(text: str) -> str:
    """``text`` with every URL in it masked (error messages may quote one)."""
    return _URL_TEXT.sub(lambda m: mask_url(m.group(0)), text)


def explain(exc: BaseException) -> str:
    """One line for a connection problem, safe to show: URLs masked, and TLS failures
    said in Redis terms (OpenSSL's "EOF occurred in violation of protocol" is how a
    server asking for a client certificate looks from the client)."""
    message = mask_urls_in(" ".join(str(exc).split()) or type(exc).__name__)
    given = deadline.expired()
    if given is not None and isinstance(exc, redis.TimeoutError):
        return (
            f"{deadline.NOT_ANSWERING}: no reply within the {given:g} s "
            f"(request_timeout) ({message})"
        )
    lowered = message.lower()
    for needle, hint in _TLS_HINTS:
        if needle in lowered:
            return f"{hint} (TLS: {message[:200]})"
    return message


def is_cluster(client: Any) -> bool:
    """True for a Redis Cluster client (scans and multi-key work must visit every primary)."""
    return isinstance(client, RedisCluster)
