"""The ``demo`` subcommand's flags and entry point (the work is in ``runner``).

``--url`` and ``--allow-writes`` are taken from the command line only: a
``REDIS_DASHBOARD_URL`` exported for ``serve`` must not make the demo write to that
Redis. Every other setting (host, port, threads, auth) also comes from the
environment, as for ``serve``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from dashboard.cliargs import (
    EXIT_ERROR,
    EXIT_OK,
    CliError,
    add_setting_flags,
    check_listen,
    settings_from,
)

# Settings shared with serve (flag, env variable, docs); --url and --allow-writes are the
# demo's own: command line only, with their own meaning.
DEMO_SETTINGS = ["host", "port", "threads", "username", "password"]


def add_parser(sub: Any) -> None:
    demo = sub.add_parser(
        "demo",
        help="run a demo shop with traffic on a private Redis, the dashboard and the playground",
        allow_abbrev=False,
    )
    add_setting_flags(demo, DEMO_SETTINGS)
    demo.add_argument(
        "--url",
        help="run the demo on this existing Redis instead of a private one (demo data under "
        "demo:, needs --allow-writes); not read from REDIS_DASHBOARD_URL. Default: a private "
        "redis-server, or the fakeredis stand-in when redis-server is not installed",
    )
    demo.add_argument(
        "--allow-writes",
        action="store_true",
        help="agree that the demo writes to the Redis given with --url (command line only, "
        "never from the environment)",
    )
    demo.add_argument("--users", type=int, default=40, help="simulated users (default 40)")
    demo.add_argument(
        "--rps", type=float, default=25.0, help="simulated requests per second (default 25)"
    )
    demo.add_argument(
        "--no-traffic",
        action="store_true",
        help="start with the traffic simulator off (start it from the playground)",
    )
    demo.set_defaults(run=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    """Errors are printed here (one line, exit 2): under ``python -m dashboard.cli`` the
    CLI's own ``CliError`` is another class than the one this module imports."""
    from dashboard.demo.runner import DemoError, run
    from dashboard.demo.simulator import Knobs

    try:
        settings = settings_from(args, DEMO_SETTINGS).updated(
            {"allow_writes": bool(args.allow_writes)}
        )
        knobs = Knobs(users=args.users, rps=args.rps).checked()
        check_listen(settings.host, settings.port)  # before a Redis is started for nothing
        run(settings, args.url, knobs, traffic=not args.no_traffic)
    except (CliError, DemoError, ValueError) as exc:
        print(f"redis-dashboard demo: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK
