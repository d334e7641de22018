"""What tunes a scan (:class:`ScanOptions`) and what one page gives back (:class:`Batch`).

Defaults and meanings: docs/scan.md ("Settings"); ``ScanOptions.from_settings``
maps the dashboard settings (docs/settings.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from redis import exceptions as rx

from dashboard.inspect.errors import CONNECTION_ERRORS

from .rollup import Fact

LUA = "lua"
PIPELINE = "pipeline"
PATHS = ("auto", LUA, PIPELINE)
SCAN_FROM = ("primary", "replica", "auto")
_SHARED_SETTINGS = ("delimiter", "depth", "top_n", "max_namespaces")


@dataclass(frozen=True)
class ScanOptions:
    """Everything that tunes a scan and its rollup (defaults match docs/scan.md)."""

    max_count: int = 1000
    min_count: int = 10
    start_count: int = 100
    target_ms: float = 2.0
    throttle_ms: float = 0.0
    samples: int | None = None
    path: str = "auto"
    sample_keys: int = 0
    delimiter: bytes = b":"
    depth: int = 3
    top_n: int = 10
    max_namespaces: int = 10_000
    parallel: int = 0
    scan_from: str = "primary"
    max_lag_s: float = 10.0
    topology_wait_s: float = 60.0

    def __post_init__(self) -> None:
        if isinstance(self.delimiter, str):
            object.__setattr__(self, "delimiter", self.delimiter.encode("utf-8"))
        if self.path not in PATHS:
            raise ValueError(f"path must be one of {PATHS}, got {self.path!r}")
        if self.scan_from not in SCAN_FROM:
            raise ValueError(f"scan_from must be one of {SCAN_FROM}, got {self.scan_from!r}")
        if min(self.parallel, self.max_lag_s, self.topology_wait_s) < 0:
            raise ValueError("parallel, max_lag_s and topology_wait_s cannot be negative")
        if not 1 <= self.min_count <= self.max_count:
            raise ValueError(
                f"need 1 <= min_count <= max_count ({self.min_count}, {self.max_count})"
            )
        if self.target_ms <= 0 or min(self.throttle_ms, self.sample_keys, self.samples or 0) < 0:
            raise ValueError("target_ms must be > 0; throttle_ms, sample_keys, samples >= 0")
        if not self.delimiter:
            raise ValueError("delimiter cannot be empty")

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> ScanOptions:
        """Options from a :class:`dashboard.config.Settings` (plus explicit overrides)."""
        count = settings.scan_count
        values = {name: getattr(settings, name) for name in _SHARED_SETTINGS}
        values |= {"max_count": count, "min_count": min(cls.min_count, count)}
        values |= {"start_count": min(cls.start_count, count)}
        names = ("target_ms", "throttle_ms", "parallel")
        values |= {k: getattr(settings, f"scan_{k}") for k in names}
        values["scan_from"] = settings.scan_from
        return cls(**{**values, "sample_keys": settings.scan_sample_keys, **overrides})

    def public(self) -> dict[str, Any]:
        """The options as plain JSON data."""
        return {**asdict(self), "delimiter": self.delimiter.decode("utf-8", "backslashreplace")}


@dataclass
class Batch:
    """The outcome of one SCAN page."""

    facts: list[Fact]
    scanned: int
    vanished: int
    refused: int
    count: int
    path: str | None
    server_us: int | None
    wall_us: int
    cursor: int
    moved: int = 0  # keys whose slot left the node mid-scan (MOVED/ASK): never "vanished"
    skipped: int = 0  # keys of slots this scanner is not assigned (importing, or read elsewhere)
    node: str = ""
    # cluster: the node refused the page's one ARGV-form call (a key it does not serve:
    # resharding, failover), so the page was read again one script call per hash slot
    fallback: bool = False


def is_refusal(exc: BaseException) -> bool:
    """Errors that mean "this command is not available to us", not "Redis is down"."""
    if isinstance(exc, CONNECTION_ERRORS) or not isinstance(exc, rx.RedisError):
        return False
    text = str(exc).lower()
    return (
        not isinstance(exc, rx.ResponseError)  # e.g. the dashboard's own command gate
        or isinstance(exc, rx.NoPermissionError)
        or "noperm" in text
        or "no permissions" in text
        or "unknown command" in text
        or "unknown subcommand" in text
        or "not allowed" in text
    )
