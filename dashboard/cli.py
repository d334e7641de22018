"""``redis-dashboard serve | keyspace | audit | demo``.

Exit codes: 0 success, 1 findings (audit), 2 usage or connection error with a
one-line reason on stderr.
"""

from __future__ import annotations

import argparse
import os
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
    check_listen,
    settings_from,
    urls_given,
)
from dashboard.config import ENV_PREFIX, Settings

SERVE_SETTINGS = [f.name for f in fields(Settings) if f.metadata.get("cli", True)]
SCAN_SETTINGS = [
    "url",
    "socket_timeout",
    "connect_timeout",
    "request_timeout",
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


AUDIT_SETTINGS = [*SCAN_SETTINGS, "targets"]


def cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_from(args, SERVE_SETTINGS)
    if not settings.loopback and not settings.username:
        raise CliError(
            f"refusing to serve on {settings.host} without authentication: set "
            f"{ENV_PREFIX}USERNAME and {ENV_PREFIX}PASSWORD (or bind to 127.0.0.1)"
        )
    from dashboard.connection import check_url, mask_url
    from dashboard.inspect.audit import ConfigError, load_config
    from dashboard.web import create_app, start_observer
    from dashboard.wsgi import serve

    try:
        load_config(settings.audit_config or None)  # a broken file is a usage error, not a 500
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    targets = targets_from(args, settings)
    for url in [t.url for t in targets] or [settings.url]:
        check_url(url)  # a URL that cannot work: one line and exit 2, not 500s
    check_listen(settings.host, settings.port)
    watched = (
        ", ".join(f"{t.name} ({t.public()['url']})" for t in targets)
        if targets
        else mask_url(settings.url)
    )
    print(
        f"redis-dashboard {__version__}: http://{settings.host}:{settings.port}/ "
        f"inspecting {watched} "
        f"({'writes enabled' if settings.allow_writes else 'read-only'})",
        file=sys.stderr,
        flush=True,
    )
    serve(lambda: start_observer(create_app(settings, targets or None)), settings)
    return EXIT_OK


def targets_from(args: argparse.Namespace, settings: Settings) -> list[Any]:
    """The targets ``--targets FILE`` or a repeated ``--url`` name; [] for one Redis."""
    from dashboard.targets import TargetsError, from_urls, load_targets

    urls = urls_given(args)
    if settings.targets and len(urls) > 1:
        raise CliError("give several targets with --targets FILE or with --url repeated, not both")
    try:
        if settings.targets:
            return load_targets(settings.targets, allow_writes=settings.allow_writes)
    except TargetsError as exc:
        raise CliError(str(exc)) from exc
    return from_urls(urls, settings.allow_writes) if len(urls) > 1 else []


def check_redis(settings: Settings) -> None:
    """The URL, then one PING within ``request_timeout``: a Redis that is not there or
    not answering is one line and exit 2 before any work starts."""
    from dashboard.connection import check_url
    from dashboard.deadline import deadline
    from dashboard.inspect.keyspace.report import gated_client

    check_url(settings.url)
    client = gated_client(settings)
    try:
        with deadline(settings.request_timeout):
            client.ping()
    finally:
        client.close()


def cmd_keyspace(args: argparse.Namespace) -> int:
    from dashboard.inspect.keyspace.report import keyspace_report, keyspace_text

    if getattr(args, "compare", False):  # docs/history.md
        from dashboard.history.cli import keyspace_compare

        return keyspace_compare(args, SCAN_SETTINGS)

    settings = settings_from(args, SCAN_SETTINGS)
    if len(urls_given(args)) > 1:
        raise CliError("keyspace scans one Redis: give --url once")
    check_redis(settings)
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

    settings = settings_from(args, AUDIT_SETTINGS)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    targets = targets_from(args, settings)
    if targets:
        return _audit_targets(targets, settings, config, args)
    check_redis(settings)
    report = audit_settings(settings, config)
    sys.stdout.write(render(report, args.format, artifact=args.config))
    return EXIT_FINDINGS if at_or_above(report, args.fail_on) else EXIT_OK


def _audit_targets(targets: list[Any], settings: Settings, config: Any, args: Any) -> int:
    """Audit each target in turn; report per target (docs/fleet.md)."""
    from dashboard.inspect.audit import at_or_above, audit_settings
    from dashboard.inspect.audit.fleet import render_targets

    entries: list[dict[str, Any]] = []
    failing = errors = False
    for target in targets:
        entry = {"name": target.name, **{k: v for k, v in target.public().items() if k == "url"}}
        try:
            one = settings.updated({"url": target.url})
            check_redis(one)
            entry["report"] = audit_settings(one, config)
            failing = failing or bool(at_or_above(entry["report"], args.fail_on))
        except Exception as exc:  # one unreachable target does not stop the others
            if not (isinstance(exc, CliError) or _is_connection_problem(exc)):
                raise
            entry["error"], errors = _one_line(exc), True
        entries.append(entry)
    sys.stdout.write(render_targets(entries, args.format, artifact=args.config))
    return EXIT_ERROR if errors else (EXIT_FINDINGS if failing else EXIT_OK)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="redis-dashboard",
        description="See how your Redis is really used.",
        allow_abbrev=False,  # --pass must not mean --password: secrets are found by name
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the web dashboard", allow_abbrev=False)
    add_setting_flags(serve, SERVE_SETTINGS)
    serve.set_defaults(run=cmd_serve)

    keyspace = sub.add_parser(
        "keyspace", help="scan the keyspace and print the namespace rollup", allow_abbrev=False
    )
    add_setting_flags(keyspace, SCAN_SETTINGS)
    keyspace.add_argument(
        "--format",
        choices=["json", "text"],
        default="text",
        help="text: a table for the terminal (default); json: the report of docs/scan.md",
    )
    from dashboard.history.cli import add_compare_flags

    add_compare_flags(keyspace)
    keyspace.set_defaults(run=cmd_keyspace)

    audit = sub.add_parser(
        "audit", help="check a Redis for anti-patterns (CI gate)", allow_abbrev=False
    )
    add_setting_flags(audit, AUDIT_SETTINGS)
    audit.add_argument(
        "--format",
        choices=["text", "json", "markdown", "sarif"],
        default="text",
        help="text (default), json (docs/rules.md), markdown (a PR comment) or sarif "
        "(code-scanning upload)",
    )
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
    if argv is None:  # a real process: keep passwords out of its (and its workers') argv
        from dashboard import secretargs

        argv = sys.argv[1:]
        if secretargs.CARRIER in os.environ:
            argv = secretargs.restore(argv)
        else:
            secretargs.reexec_without_secrets(argv)
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
    from dashboard.deadline import DeadlineExceeded
    from dashboard.inspect.errors import RedisUnavailable
    from dashboard.inspect.keyspace.report import ScanFailed

    return isinstance(
        exc,
        (
            redis.ConnectionError,
            redis.TimeoutError,
            ConnectionConfigError,
            redis.AuthenticationError,
            DeadlineExceeded,
            RedisUnavailable,
            ScanFailed,
        ),
    )


def _one_line(exc: Any) -> str:
    from dashboard.connection import explain

    return explain(exc)


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy: subcommands raise
    # dashboard.cli.CliError, which a second copy of the module would not catch.
    from dashboard.cli import main as _main

    sys.exit(_main())
