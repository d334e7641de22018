"""Anti-pattern audits: a rules catalog, one scan feeding every key rule, reports.

Entry points: :func:`run_audit` (a report dict, shape in docs/rules.md),
:func:`audit_settings` (the CLI's: a gated read-only client from settings),
:func:`load_config` (TOML thresholds), :func:`render` (text/json/markdown/sarif).
"""

from __future__ import annotations

from typing import Any

from .catalog import CATALOG, RULES, SEVERITIES
from .engine import Audit, at_or_above, run_audit
from .formats import FORMATS, render
from .thresholds import AuditConfig, ConfigError, load_config

__all__ = [
    "CATALOG",
    "FORMATS",
    "RULES",
    "SEVERITIES",
    "Audit",
    "AuditConfig",
    "ConfigError",
    "at_or_above",
    "audit_settings",
    "load_config",
    "render",
    "run_audit",
]


def audit_settings(settings: Any, config: AuditConfig | None = None) -> dict[str, Any]:
    """Audit the Redis of ``settings`` through the read-only command gate."""
    from dashboard import gate
    from dashboard.connection import ConnectionOptions, connect, mask_url
    from dashboard.inspect.keyspace.scan import ScanOptions

    options = ConnectionOptions(
        pool_size=4,
        socket_timeout=settings.socket_timeout,
        connect_timeout=settings.connect_timeout,
    )
    client = gate.install(connect(settings.url, options), allow_writes=False)
    scan = ScanOptions.from_settings(settings)
    try:
        return Audit(client, config, scan, target=mask_url(settings.url)).run()
    finally:
        client.close()
