"""Settings: one table that feeds the environment (``REDIS_DASHBOARD_*``), the CLI
flags and the docs (``docs/settings.md``; a test fails when one is undocumented).

Precedence: built-in default < environment variable < CLI flag < ``create_app(config)``.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

ENV_PREFIX = "REDIS_DASHBOARD_"
# The observer's readers (4 threads), the keyspace scan's fetcher and audit probes, and a
# spare: each may hold one connection of the pool at a time.
BACKGROUND_READERS = 8
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _setting(default: Any, help: str, *, secret: bool = False, cli: bool = True) -> Any:
    return field(default=default, metadata={"help": help, "secret": secret, "cli": cli})


class SettingsError(ValueError):
    """A setting with a value that cannot be used; the message names the setting."""


@dataclass
class Settings:
    """Every setting of the dashboard. Field name = lower-case of the env suffix."""

    url: str = _setting(
        "redis://127.0.0.1:6379/0",
        "Redis to inspect (redis://, rediss://, unix://, "
        "redis+cluster://, redis+sentinel://); the password is never shown",
    )
    host: str = _setting("127.0.0.1", "address the web server binds to")
    port: int = _setting(8000, "port the web server listens on")
    allow_writes: bool = _setting(
        False,
        "allow commands that change the inspected Redis "
        "(actions like releasing a lock); read-only by default",
    )
    username: str = _setting("", "user name for HTTP basic auth (required off loopback)")
    password: str = _setting(
        "", "password for HTTP basic auth (required off loopback)", secret=True
    )
    secret_key: str = _setting(
        "",
        "key that signs sessions and CSRF tokens; random per process when empty",
        secret=True,
        cli=False,
    )
    threads: int = _setting(32, "web server threads (each live tail holds one)")
    pool_size: int = _setting(
        0,
        "Redis connections per node for the pages; 0 = the web threads plus the background "
        "readers. A request waits (bounded) for a free one: the page says the dashboard is "
        "busy, never that Redis is down",
    )
    socket_timeout: float = _setting(5.0, "seconds to wait for a Redis reply")
    connect_timeout: float = _setting(3.0, "seconds to wait for a Redis connection")
    request_timeout: float = _setting(
        10.0,
        "seconds one request (page, JSON twin, action, /healthz, the CLI's connection "
        "check) may spend on Redis in all; past it the page shows what it read and says "
        "Redis is not answering",
    )
    scan_count: int = _setting(1000, "largest SCAN COUNT / keys per server-side batch")
    scan_target_ms: float = _setting(
        2.0,
        "longest the server may be busy with one scan "
        "batch, in ms; batches shrink to stay under it",
    )
    scan_throttle_ms: float = _setting(0.0, "pause between scan batches, in ms")
    scan_sample_keys: int = _setting(
        0, "stop after this many keys and extrapolate (0 = scan everything)"
    )
    scan_parallel: int = _setting(
        0, "shards (cluster primaries) the scan reads at once; 0 = all, 1 = one after another"
    )
    scan_from: str = _setting(
        "primary",
        "where the scan reads key facts: primary, replica (never the primaries) or auto "
        "(a healthy replica per shard, else its primary)",
    )
    delimiter: str = _setting(":", "namespace delimiter in key names")
    depth: int = _setting(3, "deepest namespace level in the keyspace tree")
    top_n: int = _setting(10, "biggest keys kept per namespace and type")
    max_namespaces: int = _setting(10000, "distinct namespaces kept before folding into (other)")
    max_streams: int = _setting(
        100, "streams listed on /streams (found with SCAN TYPE stream); the page says when capped"
    )
    stream_scan_keys: int = _setting(
        200000,
        "keys one stream-discovery round may examine; a bigger keyspace is covered "
        "over several page refreshes",
    )
    consumer_dead_ms: int = _setting(
        60000, "a consumer idle this long (ms) while holding pending entries is flagged dead"
    )
    max_tails: int = _setting(
        8, "live pub/sub tails open at once (each holds a web server thread and a connection)"
    )
    tail_buffer: int = _setting(
        1000, "messages a live tail buffers for its browser; older ones are dropped and counted"
    )
    live_max_keys: int = _setting(
        500, "most rate-limit or lock keys one live page tracks and reads per refresh"
    )
    live_scan_keys: int = _setting(
        200000,
        "most keys SCAN examines per live-page refresh; a longer search goes on next refresh",
    )
    lock_patterns: str = _setting(
        "lock:*,*:lock,locks:*",
        "comma-separated SCAN globs of string locks (redis-py Lock, python-redis-lock, SET NX)",
    )
    limits_prefixes: str = _setting(
        "LIMITS", "comma-separated key prefixes of the limits library (Flask-Limiter)"
    )
    detectors_file: str = _setting(
        "", "TOML file with your own rate-limit and lock key patterns (docs/live.md)"
    )
    targets: str = _setting(
        "",
        "TOML file naming several Redis targets to watch (docs/fleet.md); the url setting "
        "is then not used",
    )
    rescan_interval: float = _setting(
        600.0,
        "seconds between keyspace scans (each feeds keyspace, audit and metrics; counted "
        "from the end of the previous one); 0 = only at start and on demand",
    )
    live_refresh_s: float = _setting(
        1.0,
        "seconds between refreshes of rate limits, locks, streams and pub/sub while someone "
        "watches (once per cadence however many do)",
    )
    server_refresh_s: float = _setting(
        2.0, "seconds between refreshes of the server overview while someone watches"
    )
    watch_lease_s: float = _setting(
        15.0,
        "a view keeps its data refreshing this many seconds after it was last requested "
        "(then the observer stops reading it)",
    )
    first_wait_s: float = _setting(
        5.0, "longest a request waits for the first reading of a view before answering 'loading'"
    )
    audit_config: str = _setting(
        "",
        "TOML file with audit thresholds and exemptions for the dashboard's audit (docs/rules.md)",
    )
    state: str = _setting(
        "",
        "history state file (.sqlite/.sqlite3/.db) or directory (one <target>.sqlite each); "
        "default $XDG_STATE_HOME/redis-dashboard/ (docs/history.md)",
    )
    no_state: bool = _setting(
        False, "keep no history: no state file, no trends, no sampling while nobody watches"
    )
    history_interval: float = _setting(
        60.0,
        "seconds between history samples of server facts and live state (read even while "
        "nobody watches, when history is on)",
    )
    history_retention_days: float = _setting(30.0, "days of history kept (older is deleted)")
    history_max_mb: float = _setting(
        64.0, "most MB one target's state file may take; the oldest history goes first"
    )
    metrics_top_n: int = _setting(
        50,
        "namespaces and stream groups with their own label on /metrics; the rest are summed "
        "into one 'other' series",
    )
    browse_scan_keys: int = _setting(
        20000,
        "most keys SCAN examines for one page of the key browser (/keys); the page then "
        "offers to continue where it stopped",
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Defaults overridden by ``REDIS_DASHBOARD_<NAME>`` variables."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            name = ENV_PREFIX + f.name.upper()
            if name in environ:
                values[f.name] = environ[name]
        return cls().updated(values)

    def updated(self, values: Mapping[str, Any]) -> Settings:
        """A copy with ``values`` applied (strings are converted and checked)."""
        known = {f.name: f for f in fields(self)}
        current = {name: getattr(self, name) for name in known}
        for name, raw in values.items():
            if raw is None:
                continue
            if name not in known:
                raise SettingsError(f"unknown setting {name!r}")
            current[name] = _convert(name, type(getattr(self, name)), raw)
        settings = Settings(**current)
        settings.validate()
        return settings

    def validate(self) -> None:
        positive = (
            "port",
            "threads",
            "scan_count",
            "depth",
            "top_n",
            "max_namespaces",
            "live_max_keys",
            "live_scan_keys",
            "browse_scan_keys",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("live_refresh_s", "server_refresh_s", "watch_lease_s"):
            if getattr(self, name) < 0.05:
                raise SettingsError(f"{name} must be at least 0.05 s, got {getattr(self, name)}")
        if self.rescan_interval < 0 or self.first_wait_s < 0:
            raise SettingsError("rescan_interval and first_wait_s cannot be negative")
        if self.pool_size < 0:
            raise SettingsError(f"pool_size must be 0 (automatic) or more, got {self.pool_size}")
        for name in ("socket_timeout", "connect_timeout", "scan_target_ms", "request_timeout"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be positive, got {getattr(self, name)}")
        if self.scan_throttle_ms < 0 or self.scan_sample_keys < 0:
            raise SettingsError("scan_throttle_ms and scan_sample_keys cannot be negative")
        if not self.delimiter:
            raise SettingsError("delimiter cannot be empty")
        if self.scan_parallel < 0:
            raise SettingsError(f"scan_parallel cannot be negative, got {self.scan_parallel}")
        if self.scan_from not in ("primary", "replica", "auto"):
            raise SettingsError(
                f"scan_from (REDIS_DASHBOARD_SCAN_FROM) must be primary, replica or auto, "
                f"got {self.scan_from!r}"
            )
        for name in ("max_streams", "stream_scan_keys", "consumer_dead_ms", "tail_buffer"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 1 <= self.max_tails < self.threads:
            raise SettingsError(
                f"max_tails must be at least 1 and below threads ({self.threads}): each live "
                f"tail holds a web server thread, got {self.max_tails}"
            )
        if bool(self.username) != bool(self.password):
            raise SettingsError("set both username and password for basic auth, or neither")
        if self.history_interval < 1:
            raise SettingsError(
                f"history_interval must be at least 1 s, got {self.history_interval}"
            )
        if self.history_retention_days <= 0:
            raise SettingsError("history_retention_days must be positive")
        if self.history_max_mb < 4:
            raise SettingsError(f"history_max_mb must be at least 4, got {self.history_max_mb}")
        if self.metrics_top_n < 1:
            raise SettingsError(f"metrics_top_n must be at least 1, got {self.metrics_top_n}")

    @property
    def pool_connections(self) -> int:
        """Connections per node of the pages' pool: ``pool_size``, or (0) one per web
        thread plus the background readers (scan, stream discovery, observer)."""
        return self.pool_size or self.threads + BACKGROUND_READERS

    @property
    def loopback(self) -> bool:
        """True when the web server is reachable only from this machine."""
        if self.host in {"localhost", ""}:
            return self.host == "localhost"
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def public(self) -> dict[str, Any]:
        """Settings safe to show: secrets are masked, the URL's password too."""
        from dashboard.connection import mask_url

        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("secret"):
                value = "***" if value else ""
            elif f.name == "url":
                value = mask_url(value)
            out[f.name] = value
        return out


def _convert(name: str, kind: type, raw: Any) -> Any:
    if isinstance(raw, kind) and not (kind is int and isinstance(raw, bool)):
        return raw
    text = str(raw).strip()
    try:
        if kind is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError(text)
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError:
        env = ENV_PREFIX + name.upper()
        raise SettingsError(f"{name} ({env}) must be a {kind.__name__}, got {text!r}") from None
    return text


def setting_fields() -> list[Any]:
    """The dataclass fields, for the CLI and the docs test."""
    return list(fields(Settings))
