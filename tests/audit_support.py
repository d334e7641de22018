"""Helpers for the audit tests: well-configured private servers and assertions."""

from __future__ import annotations

import redis

from dashboard.inspect.audit import run_audit
from dashboard.inspect.audit.thresholds import config_from_mapping

PASSWORD = "audit-pw"
SEVERE = ("warning", "critical")


class Planted:
    """A private redis-server plus an authenticated client on it."""

    def __init__(self, server, password: str | None) -> None:
        self.server = server
        self.password = password
        self.client = redis.Redis(port=server.port, password=password, socket_timeout=10)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.server.port}/0"

    def connect(self, **kw) -> redis.Redis:
        return redis.Redis(port=self.server.port, password=self.password, **kw)

    def audit(self, rules: dict | None = None, **kw) -> dict:
        config = config_from_mapping({"rules": rules or {}})
        return run_audit(self.client, config, **kw)


def start(
    private_server,
    *args: str,
    maxmemory: str | None = "100mb",
    policy: str | None = "volatile-lru",
    password: str | None = PASSWORD,
) -> Planted:
    """A server with a memory limit, an eviction policy and a password by default.

    Its slowlog takes only commands over 1 s: on a loaded machine any command may take
    over Redis's default 10 ms, and a slow-commands warning would then join the finding
    a test is about (a test of that rule passes its own threshold in ``args``)."""
    extra = ["--slowlog-log-slower-than", "1000000", *args]
    if maxmemory:
        extra += ["--maxmemory", maxmemory]
    if policy:
        extra += ["--maxmemory-policy", policy]
    server = private_server(*extra)
    if password:  # EmbeddedRedis pings without a password while starting: set it after
        admin = redis.Redis(port=server.port)
        admin.config_set("requirepass", password)
        admin.close()
    return Planted(server, password)


def by_rule(report: dict, rule: str) -> list[dict]:
    return [f for f in report["findings"] if f["rule"] == rule]


def assert_fires_alone(report: dict, rule: str, subjects: set[str]) -> list[dict]:
    """``rule`` reports exactly ``subjects``, and no other rule says warning or worse."""
    found = by_rule(report, rule)
    assert {f["subject"] for f in found} == subjects, found
    others = [
        (f["rule"], f["subject"], f["message"])
        for f in report["findings"]
        if f["rule"] != rule and f["severity"] in SEVERE
    ]
    assert not others, others
    assert not [s for s in report["skipped"] if s["rule"] == rule], report["skipped"]
    return found
