"""``redis-dashboard serve | keyspace | audit | demo``.

Exit codes: 0 success, 1 findings (audit), 2 usage or connection error with a
one-line reason on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from dashboard import __version__
from dashboard.cliargs import (
    EXIT_ERROR,
    EXIT_FINDINGS,
    EXIT_OK,
    CliError,
    add_setting_flags,
    settings_from,
)
from dashboard.config import ENV_PREFIX, Settings

SERVE_SETTINGS = [f.name for f in fields(Settings) if f.metadata.get("cli", True)]
SCAN_SETTINGS = [
    "url",
    "socket_timeout",
    "connect_timeout",
    "scan_count",
    "scan_target_ms",
    "scan_throttle_ms",
    "scan_sample_keys",
    "scan_parallel",
    "scan_from",
    "delimiter",
    "depth",
    "top_n",
    "max_namespaces",
]


def cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_from(args, SERVE_SETTINGS)
    if not settings.loopback and not settings.username:
        raise CliError(
            f"refusing to serve on {settings.host} without authentication: set "
            f"{ENV_PREFIX}USERNAME and {ENV_PREFIX}PASSWORD (or bind to 127.0.0.1)"
        )
    from dashboard.connection import mask_url
    from dashboard.web import create_app
    from dashboard.wsgi import serve

    print(
        f"redis-dashboard {__version__}: http://{settings.host}:{settings.port}/ "
        f"inspecting {mask_url(settings.url)} "
        f"({'writes enabled' if settings.allow_writes else 'read-only'})",
        file=sys.stderr,
        flush=True,
    )
    serve(lambda: create_app(settings), settings)
    return EXIT_OK


def cmd_keyspace(args: argparse.Namespace) -> int:
    from dashboard.inspect.keyspace.report import keyspace_report, keyspace_text

    settings = settings_from(args, SCAN_SETTINGS)
    report = keyspace_report(settings)
    if args.format == "json":
        import json

        print(json.dumps(report, indent=2))
    else:
        print(keyspace_text(report))
    return EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    """Exit 1 when a finding is at or above --fail-on (docs/rules.md)."""
    from dashboard.inspect.audit import (
        ConfigError,
        at_or_above,
        audit_settings,
        load_config,
        render,
    )

    settings = settings_from(args, SCAN_SETTINGS)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    report = audit_settings(settings, config)
    sys.stdout.write(render(report, args.format, artifact=args.config))
    return EXIT_FINDINGS if at_or_above(report, args.fail_on) else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="redis-dashboard",
        description="See how your Redis is really used.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the web dashboard")
    add_setting_flags(serve, SERVE_SETTINGS)
    serve.set_defaults(run=cmd_serve)

    keyspace = sub.add_parser("keyspace", help="scan the keyspace and print the namespace rollup")
    add_setting_flags(keyspace, SCAN_SETTINGS)
    keyspace.add_argument("--format", choices=["json", "text"], default="text")
    keyspace.set_defaults(run=cmd_keyspace)

    audit = sub.add_parser("audit", help="check a Redis for anti-patterns (CI gate)")
    add_setting_flags(audit, SCAN_SETTINGS)
    audit.add_argument("--format", choices=["text", "json", "markdown", "sarif"], default="text")
    audit.add_argument(
        "--fail-on",
        choices=["info", "warning", "critical"],
        default="warning",
        help="exit 1 when a finding has this severity or a higher one (default warning)",
    )
    audit.add_argument("--config", metavar="FILE", help="TOML file with thresholds and exemptions")
    audit.set_defaults(run=cmd_audit)

    from dashboard.demo.command import add_parser as add_demo_parser

    add_demo_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except CliError as exc:
        print(f"redis-dashboard {args.command}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # connection errors and the like: one line, exit 2
        if _is_connection_problem(exc):
            print(f"redis-dashboard {args.command}: {_one_line(exc)}", file=sys.stderr)
            return EXIT_ERROR
        raise


def _is_connection_problem(exc: Exception) -> bool:
    import redis

    from dashboard.connection import ConnectionConfigError

    return isinstance(
        exc,
        (
            redis.ConnectionError,
            redis.TimeoutError,
            ConnectionConfigError,
            redis.AuthenticationError,
        ),
    )


def _one_line(exc: Any) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy: subcommands raise
    # dashboard.cli.CliError, which a second copy of the module would not catch.
    from dashboard.cli import main as _main

    sys.exit(_main())
