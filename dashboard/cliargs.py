"""What every subcommand shares: exit codes, the one-line error, and flags built from
the Settings table (so a flag, its env variable and its docs cannot drift apart).

Kept apart from ``dashboard.cli`` so subcommands defined elsewhere (``demo``) can use it
without importing the CLI that imports them.
"""

from __future__ import annotations

import argparse
import errno
import socket
from collections.abc import Sequence
from dataclasses import fields

from dashboard.config import ENV_PREFIX, Settings, SettingsError

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2


class CliError(Exception):
    """A usage or connection problem: printed as one line, exit code 2."""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_setting_flags(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    """One flag per setting, help and default taken from the Settings table."""
    by_name = {f.name: f for f in fields(Settings)}
    for name in names:
        f = by_name[name]
        env = ENV_PREFIX + name.upper()
        help_text = f"{f.metadata['help']} (env {env}; default {f.default!r})"
        if f.metadata.get("secret"):
            help_text = f"{f.metadata['help']} (env {env}; prefer the env variable)"
        if name == "url":  # serve and audit watch several when it is repeated
            parser.add_argument(
                _flag(name), dest=name, action="append", default=None, metavar="URL",
                help=help_text + "; repeat it for several targets (serve, audit)",
            )  # fmt: skip
        elif isinstance(f.default, bool):
            parser.add_argument(
                _flag(name), dest=name, action="store_true", default=None, help=help_text
            )
        else:
            parser.add_argument(
                _flag(name), dest=name, type=type(f.default), default=None, help=help_text
            )


def urls_given(args: argparse.Namespace) -> list[str]:
    """Every ``--url`` given, in order (none: the environment's or the default)."""
    return list(getattr(args, "url", None) or [])


def settings_from(args: argparse.Namespace, names: Sequence[str]) -> Settings:
    """Environment first, then the flags the user gave (the first ``--url``)."""
    given = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    if isinstance(given.get("url"), list):
        given["url"] = given["url"][0]
    try:
        return Settings.from_env().updated(given)
    except SettingsError as exc:
        raise CliError(str(exc)) from exc


def check_listen(host: str, port: int) -> None:
    """Bind ``host:port`` once, the way gunicorn will, and let go: a busy port is one
    line naming it and ``--port`` (gunicorn itself retries five times, logging ten
    ERROR lines, then exits 1)."""
    if not 1 <= port <= 65535:
        raise CliError(f"port {port} is not a TCP port (1-65535): choose another with --port")
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise CliError(f"cannot listen on {host!r}: {exc.strerror} (--host)") from None
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise CliError(_listen_problem(host, port, exc)) from None


def _listen_problem(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is already in use (another dashboard, or another "
            "server): stop it, or choose another port with --port"
        )
    if exc.errno == errno.EACCES:
        return f"not allowed to listen on port {port} (ports below 1024 need root): use --port"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {host}: this machine has no such address (--host)"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc} (--host, --port)"
