"""``redis-dashboard keyspace --compare``: scan now, compare with the last stored scan
of the same Redis, and exit 1 when a namespace grew past a limit (a CI or cron gate).

The new scan is stored (source ``cli``) when the state file can be written, so the
next run compares with this one; when a running dashboard writes the file, the scan
is compared with that dashboard's last scan and not stored.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import Any

from dashboard.cliargs import EXIT_FINDINGS, EXIT_OK, CliError, add_setting_flags, settings_from
from dashboard.history import queries
from dashboard.history.compare import diff_scans, past_threshold
from dashboard.history.paths import state_file
from dashboard.history.record import record_scan
from dashboard.history.retention import Retention, apply
from dashboard.history.store import Store, StoreUnavailable

STATE_SETTINGS = ["state", "no_state", "history_retention_days", "history_max_mb"]
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?i?b?)?\s*", re.I)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str) -> int:
    """``500MB``, ``1.5GiB``, ``2048`` -> bytes (binary multiples, as the pages show)."""
    match = _SIZE.fullmatch(text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 500MB, 2GB, 1048576)")
    unit = (match.group(2) or "").lower().rstrip("b").rstrip("i")
    return int(float(match.group(1)) * _UNITS[unit])


def add_compare_flags(parser: argparse.ArgumentParser) -> None:
    """The keyspace command's history flags (docs/history.md)."""
    add_setting_flags(parser, STATE_SETTINGS)
    parser.add_argument(
        "--compare",
        action="store_true",
        help="compare with the last scan stored for this Redis; exit 1 when a namespace "
        "grew past a --max-growth-* limit",
    )
    parser.add_argument(
        "--max-growth-keys", type=int, metavar="N", help="keys a namespace may gain"
    )
    parser.add_argument(
        "--max-growth-bytes", type=parse_size, metavar="SIZE", help="bytes a namespace may gain"
    )
    parser.add_argument(
        "--max-growth-percent",
        type=float,
        metavar="P",
        help="percent of its bytes a namespace of 1 MB or more may gain",
    )


def _scan(settings: Any) -> dict[str, Any]:
    """One foreground scan, shaped as the observer's picture (without the audit)."""
    from dashboard.inspect.keyspace.report import ScanFailed, gated_client
    from dashboard.inspect.keyspace.scan import ScanOptions
    from dashboard.inspect.keyspace.scanjob import FAILED, scan_keyspace

    started = time.time()
    client = gated_client(settings)
    try:
        client.ping()
        snap = scan_keyspace(client, ScanOptions.from_settings(settings))
    finally:
        client.close()
    if snap["state"] == FAILED or snap["result"] is None:
        raise ScanFailed(f"scan failed: {snap['error']}")
    scan = {k: v for k, v in snap.items() if k != "result"}
    scan.update(id=f"{int(started * 1000)}-cli", reason="redis-dashboard keyspace --compare")
    return {"scan": scan, "result": snap["result"], "audit": None}


def _open(path: str, url: str) -> tuple[Store, str | None]:
    """The state file to write (or, when another process writes it, to read)."""
    store = Store(path, target="cli", url=url)
    if store.mode == "file":
        return store, None
    why = store.warning
    store.close()
    try:
        return Store(path, read_only=True), why
    except StoreUnavailable as exc:  # no file to read either: say why it was not written
        raise CliError(why if "no state file" in str(exc) else str(exc)) from exc


def keyspace_compare(args: argparse.Namespace, names: list[str]) -> int:
    """Scan, store, compare with the previous stored scan; the exit code is the gate."""
    from dashboard.cli import check_redis
    from dashboard.cliargs import urls_given
    from dashboard.connection import mask_url
    from dashboard.targets import name_from_url

    settings = settings_from(args, [*names, *STATE_SETTINGS])
    if len(urls_given(args)) > 1:
        raise CliError("keyspace --compare scans one Redis: give --url once")
    if settings.no_state:
        raise CliError("--compare needs the stored history: drop --no-state")
    url = mask_url(settings.url)
    path = state_file(settings.state, False, name_from_url(settings.url), settings.url)
    check_redis(settings)  # a bad URL or a Redis that is not there: one line, exit 2
    picture = _scan(settings)
    store, not_stored = _open(path, url)
    try:
        previous = queries.scans(store, limit=1)
        new_store = store
        if store.mode == "file":
            store.write([lambda conn: record_scan(conn, picture, source="cli")])
            store.maintain(lambda conn: apply(conn, Retention.from_settings(settings)))
        else:
            new_store = Store("")
            new_store.write([lambda conn: record_scan(conn, picture, source="cli")])
        new = queries.scan(new_store, picture["scan"]["id"])
        diff = None
        if previous and new is not None:
            old = previous[0]
            diff = diff_scans(
                old,
                queries.namespaces(store, old["row"]),
                queries.findings(store, old["row"]),
                new,
                queries.namespaces(new_store, new["row"]),
                [],
            )
    finally:
        store.close()
    limits = {
        "max_keys": args.max_growth_keys,
        "max_bytes": args.max_growth_bytes,
        "max_percent": args.max_growth_percent,
    }
    exceeded = [] if diff is None else past_threshold(diff, **limits)
    report = {
        "url": url,
        "state": path,
        "stored": not_stored is None,
        "not_stored_because": not_stored,
        "limits": limits,
        "compare": diff,
        "exceeded": exceeded,
    }
    if not_stored:
        print(f"note: this scan is not stored: {not_stored}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps(report, indent=2))
    else:
        print(compare_text(report))
    return EXIT_FINDINGS if exceeded else EXIT_OK


def _signed(value: float | None, size: bool = False) -> str:
    from dashboard.web.filters import human_bytes

    if value is None:
        return "-"
    text = human_bytes(value) if size else f"{value:,}"
    return ("+" if value > 0 else "") + text


def compare_text(report: dict[str, Any]) -> str:
    """The terminal form of a ``--compare`` report."""
    from dashboard.web.filters import human_bytes, percent, timestamp

    diff = report["compare"]
    lines = []
    if diff is None:
        lines.append(
            f"{report['url']}: no stored scan to compare with yet; this scan is the baseline "
            f"({report['state']})"
        )
        return "\n".join(lines)
    a, b, t = diff["a"], diff["b"], diff["totals"]
    lines += [
        f"{report['url']}: scan {b['id']} compared with {a['id']} "
        f"({timestamp(a['finished_at'])}, stored in {report['state']})",
        f"keys {t['keys_a']:,} -> {t['keys_b']:,} ({_signed(t['keys_delta'])}) · memory "
        f"{human_bytes(t['bytes_a'])} -> {human_bytes(t['bytes_b'])} "
        f"({_signed(t['bytes_delta'], True)}) · TTL coverage {percent(t['ttl_coverage_a'])} -> "
        f"{percent(t['ttl_coverage_b'])}",
        *(f"warning: {w}" for w in diff["warnings"]),
        "",
        f"{'namespace':<40} {'status':<12} {'keys':>12} {'memory':>12} {'TTL %':>7}",
    ]
    changed = [r for r in diff["namespaces"] if r["status"] != "unchanged"]
    for r in changed:
        name = "  " * ((r["depth"] or 1) - 1) + (r["namespace"] or "")
        cov = "-" if r["ttl_coverage_b"] is None else f"{r['ttl_coverage_b'] * 100:.0f}"
        lines.append(
            f"{name[:40]:<40} {r['status']:<12} {_signed(r['keys_delta']):>12} "
            f"{_signed(r['bytes_delta'], True):>12} {cov:>7}"
        )
    if not changed:
        lines.append("(no namespace changed)")
    if report["exceeded"]:
        lines += ["", "grew past the limits:"]
        lines += [f"  {e['namespace']}: {'; '.join(e['why'])}" for e in report["exceeded"]]
    return "\n".join(lines)
