"""Keep passwords out of the process list.

Every user of a machine can read every process's arguments (``ps``,
``/proc/<pid>/cmdline``), and gunicorn's worker inherits them from its master. So when
``--url`` carries a password (``redis://:pw@host``, ``?password=``,
``?sentinel_password=``) or ``--password`` is given, the CLI warns once and re-executes
itself, before anything else starts, with those flags moved into a private
environment variable (``/proc/<pid>/environ`` is readable by the same user only).
The new process reads them back as if they were still on the command line and drops
the variable, so nothing it starts inherits it. The documented way is still better:
``REDIS_DASHBOARD_URL`` / ``REDIS_DASHBOARD_PASSWORD`` never touch the arguments.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlsplit

CARRIER = "_REDIS_DASHBOARD_HIDDEN_ARGS"  # JSON list of [flag, value]
SECRET_FLAGS = ("--url", "--password")

WARNING = (
    "redis-dashboard: warning: a password given on the command line is visible to every "
    "user of this machine in the process list (ps); it was moved out of this process's "
    "arguments. Prefer REDIS_DASHBOARD_URL (and REDIS_DASHBOARD_PASSWORD) in the "
    "environment; see docs/settings.md"
)


def url_has_password(url: str) -> bool:
    """A password in the user information or in a ``*password*`` query option."""
    rest = url.partition("://")[2]
    userinfo = rest.rpartition("@")[0] if "@" in rest and not rest.startswith("/") else ""
    if userinfo and (":" in userinfo or "/" in userinfo or "?" in userinfo):
        return True
    try:
        query = urlsplit(url).query
    except ValueError:
        return False
    return any("password" in name.lower() and value for name, value in parse_qsl(query))


def _is_secret(flag: str, value: str) -> bool:
    return bool(value) and (flag == "--password" or url_has_password(value))


def split_secrets(args: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """``args`` without the secret flags, and those flags as ``[flag, value]`` pairs."""
    kept: list[str] = []
    hidden: list[list[str]] = []
    items = iter(args)
    for arg in items:
        flag, eq, value = arg.partition("=")
        if flag in SECRET_FLAGS and eq and _is_secret(flag, value):
            hidden.append([flag, value])
            continue
        if arg in SECRET_FLAGS:
            value = next(items, None)
            if value is not None and _is_secret(arg, value):
                hidden.append([arg, value])
                continue
            kept.append(arg)
            if value is not None:
                kept.append(value)
            continue
        if arg == "--":
            kept += [arg, *items]
            break
        kept.append(arg)
    return kept, hidden


def restore(args: list[str]) -> list[str]:
    """The arguments with the hidden flags back, when this process was re-executed."""
    carried = os.environ.pop(CARRIER, None)
    if carried is None:
        return args
    try:
        pairs = json.loads(carried)
    except ValueError:
        return args
    extra = [part for pair in pairs for part in pair]
    if "--" in args:  # keep them before a "--" that ends the options
        at = args.index("--")
        return [*args[:at], *extra, *args[at:]]
    return [*args, *extra]


def reexec_without_secrets(args: list[str]) -> None:
    """Warn and re-execute with the secret flags moved to the environment (no return),
    or return when there is nothing to hide."""
    kept, hidden = split_secrets(args)
    if not hidden:
        return
    print(WARNING, file=sys.stderr, flush=True)
    env = {**os.environ, CARRIER: json.dumps(hidden)}
    script = sys.argv[0]
    if script.endswith(".py") or not os.path.isfile(script):  # python -m dashboard.cli
        command = [sys.executable, "-m", "dashboard.cli", *kept]
    else:  # the redis-dashboard console script: keep its name in the process list
        command = [sys.executable, script, *kept]
    sys.stdout.flush()
    os.execve(sys.executable, command, env)  # noqa: S606 - our own interpreter and module
