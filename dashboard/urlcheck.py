"""Checks a Redis URL once, before anything is sent or looked up.

A URL that cannot work should fail at start-up with one line naming what is wrong,
not as a 500 on every page or a traceback. Three kinds of mistakes are caught:

* **A password that leaks into the host.** An unencoded ``/``, ``?`` or ``#`` in the
  password ends the host part early (``redis://bob:86/42@host`` has host ``bob``):
  redis-py would look up and connect to a piece of the password and print it in
  every error. Any ``@`` after the host part (outside the value of an option that
  may hold one) is refused, and the message quotes nothing of the URL.
* **Options nobody reads.** Query options are checked against the list this kind of
  URL supports (:data:`OPTIONS`); an unknown one (``?timeout=5``) or a TLS option on
  a plain ``redis://`` URL is refused by name, and values are checked by type.
* **TLS files that cannot work.** The CA bundle, client certificate and key are
  loaded up front, so the message names the file that is wrong instead of
  OpenSSL's "PEM lib" at the first command.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
CERT_REQS = ("required", "optional", "none")


class ConnectionConfigError(ValueError):
    """A URL or option that cannot describe a Redis connection; the message is safe to show
    (it never quotes a password). Also importable from :mod:`dashboard.connection`."""


def _text(_name: str, value: Any) -> Any:
    return value


def _int_at_least(low: int) -> Callable[[str, str], int]:
    def check(name: str, value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ConnectionConfigError(f"URL option {name} must be a whole number") from None
        if number < low:
            raise ConnectionConfigError(f"URL option {name} must be at least {low}")
        return number

    return check


def _positive(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ConnectionConfigError(f"URL option {name} must be a number of seconds") from None
    if not number > 0 or number == float("inf"):
        raise ConnectionConfigError(f"URL option {name} must be a positive number of seconds")
    return number


def parse_bool(name: str, value: Any) -> bool:
    """``true/false/1/0/yes/no/on/off`` (any case); anything else is refused."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise ConnectionConfigError(f"{name} must be true or false (also 1/0, yes/no, on/off)")


def _cert_reqs(name: str, value: str) -> str:
    if str(value).strip().lower() not in CERT_REQS:
        raise ConnectionConfigError(f"{name} must be one of {', '.join(CERT_REQS)}")
    return str(value).strip().lower()


def _protocol(name: str, value: str) -> int:
    if value.strip() not in ("2", "3"):
        raise ConnectionConfigError(f"URL option {name} must be 2 or 3 (the RESP version)")
    return int(value)


Check = Callable[[str, str], Any]
TLS_OPTIONS: dict[str, Check] = {
    "ssl_ca_certs": _text,
    "ssl_certfile": _text,
    "ssl_keyfile": _text,
    "ssl_cert_reqs": _cert_reqs,
    "ssl_check_hostname": parse_bool,
}
# Options each kind of URL reads (TLS options only with rediss).
OPTIONS: dict[str, dict[str, Check]] = {
    "standalone": {
        "db": _int_at_least(0),
        "username": _text,
        "password": _text,
        "client_name": _text,
        "protocol": _protocol,
        "socket_timeout": _positive,
        "socket_connect_timeout": _positive,
        "socket_keepalive": parse_bool,
        "health_check_interval": _int_at_least(0),
    },
    "cluster": {},
    "sentinel": {"sentinel_username": _text, "sentinel_password": _text},
}
# Options whose value may legitimately hold an "@" (credentials, file paths).
_MAY_HOLD_AT = {"username", "password", "client_name", "sentinel_username", "sentinel_password"}
_MAY_HOLD_AT |= {"ssl_ca_certs", "ssl_certfile", "ssl_keyfile"}

LEAK = (
    "the Redis URL has an '@' after its host part, so a piece of the password would be "
    "taken as the host: percent-encode the password's special characters (/ as %2F, ? as "
    "%3F, # as %23, @ as %40). The URL is not shown here because it may hold the password"
)


def kind_of(scheme: str) -> str:
    if scheme.endswith("+cluster"):
        return "cluster"
    if scheme.endswith("+sentinel"):
        return "sentinel"
    return "standalone"


def _netloc_end(rest: str) -> int:
    """Where urlsplit ends the host part: at the first ``/``, ``?`` or ``#``."""
    ends = [i for i in (rest.find(c) for c in "/?#") if i >= 0]
    return min(ends) if ends else len(rest)


def check_userinfo(scheme: str, url: str) -> None:
    """Refuse an ``@`` after the host part (a password with an unencoded ``/ ? #``)."""
    rest = url.split("://", 1)[1]
    end = _netloc_end(rest)
    tail = rest[end:]
    if "@" not in tail or (scheme == "unix" and end == 0):  # unix:///run/redis@6379.sock
        return
    path_and_query, _, fragment = tail.partition("#")
    path, _, query = path_and_query.partition("?")
    if "@" in path or "@" in fragment:
        raise ConnectionConfigError(LEAK)
    for piece in query.replace(";", "&").split("&"):
        if "@" not in piece:
            continue
        name, eq, _value = piece.partition("=")
        if not eq or "@" in name or name not in _MAY_HOLD_AT:
            raise ConnectionConfigError(LEAK)


def check_query(scheme: str, query: str) -> dict[str, str]:
    """The URL's options, each known to this kind of URL and of the right type."""
    tls = scheme.startswith("rediss")
    allowed = OPTIONS[kind_of(scheme)]
    options: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in TLS_OPTIONS:
            if not tls:
                secure = scheme.replace("redis", "rediss", 1)
                raise ConnectionConfigError(
                    f"URL option {name} is for TLS connections: use {secure}:// (this URL is "
                    f"{scheme}://, which does not use TLS)"
                )
            TLS_OPTIONS[name](name, value)
        elif name in allowed:
            allowed[name](name, value)
        else:
            known = sorted(allowed) + (sorted(TLS_OPTIONS) if tls else [])
            raise ConnectionConfigError(
                f"unknown URL option {name!r} for a {scheme}:// URL; supported: "
                + (", ".join(known) or "none")
                + " (docs/settings.md)"
            )
        options[name] = value
    return options


def tls_kwargs(given: Mapping[str, Any]) -> dict[str, Any]:
    """TLS options (from the URL or from code) checked, normalised, their files loaded."""
    kwargs = {name: value for name, value in given.items() if value is not None}
    for name, value in list(kwargs.items()):
        if not isinstance(value, str | bool):
            raise ConnectionConfigError(f"{name} must be text, got {type(value).__name__}")
        checked = TLS_OPTIONS[name](name, value)
        kwargs[name] = checked
    check_tls_files(kwargs)
    return kwargs


def _has_marker(path: str, *markers: bytes) -> bool:
    try:
        with open(path, "rb") as handle:
            data = handle.read(1024 * 1024)
    except OSError:
        return False
    return any(m in data for m in markers)


def _no_passphrase() -> bytes:
    """Never let OpenSSL prompt on the terminal for a key's passphrase."""
    return b""


def check_tls_files(tls: Mapping[str, Any]) -> None:
    """Load the CA bundle, client certificate and key now, naming the file that is wrong."""
    ca, cert, key = (tls.get(n) for n in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"))
    for name, path in (("ssl_ca_certs", ca), ("ssl_certfile", cert), ("ssl_keyfile", key)):
        if path is not None and not os.path.isfile(path):
            raise ConnectionConfigError(f"{name}: no such file: {path}")
        if path is not None and not os.access(path, os.R_OK):
            raise ConnectionConfigError(f"{name}: cannot read {path} (permissions)")
    if key and not cert:
        raise ConnectionConfigError(
            "ssl_keyfile is given without ssl_certfile (the client certificate)"
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca:
        try:
            context.load_verify_locations(cafile=ca)
        except (ssl.SSLError, OSError, ValueError):
            raise ConnectionConfigError(f"ssl_ca_certs {ca} holds no PEM CA certificate") from None
    if cert:
        try:
            context.load_cert_chain(cert, key, password=_no_passphrase)
        except (ssl.SSLError, OSError, ValueError):
            raise ConnectionConfigError(_cert_problem(cert, key)) from None


def _cert_problem(cert: str, key: str | None) -> str:
    if not _has_marker(cert, b"-----BEGIN CERTIFICATE-----"):
        return f"ssl_certfile {cert} holds no PEM certificate"
    key_file = key or cert
    encrypted = _has_marker(key_file, b"ENCRYPTED")
    if key is None and not _has_marker(cert, b"PRIVATE KEY-----"):
        return (
            f"ssl_certfile {cert} holds a certificate but no private key: give the key file "
            "with ssl_keyfile"
        )
    if encrypted:
        return (
            f"the private key in {key_file} is protected by a passphrase, which the dashboard "
            "cannot ask for: give an unencrypted copy (openssl pkey -in KEY -out KEY.plain)"
        )
    if key is not None and not _has_marker(key, b"PRIVATE KEY-----"):
        return f"ssl_keyfile {key} holds no PEM private key"
    return f"the private key in {key_file} does not belong to the certificate in {cert}"
