"""Audit configuration: thresholds, exemptions, severities, from a TOML file.

::

    [audit]
    max_findings = 50          # per rule; the rest is counted in "omitted"

    [rules.missing-ttl]
    exempt_namespaces = ["user", "config:*"]
    exempt_types = ["stream", "zset"]

    [rules.big-string]
    max_bytes = 524288

    [rules.no-namespace]
    enabled = false

    [rules.hot-keys]
    severity = "warning"

Every rule table accepts the rule's thresholds (docs/rules.md) plus ``enabled``
and ``severity``. Unknown rules, unknown names and values of the wrong type are
errors (:class:`ConfigError`, exit 2 on the CLI): a typo must not silently
disable a CI gate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dashboard.tomlfile import read_toml

from .catalog import RULES, SEVERITIES

DEFAULT_MAX_FINDINGS = 50


class ConfigError(ValueError):
    """An audit configuration that cannot be used; the message names the file and key."""


@dataclass
class AuditConfig:
    """Thresholds per rule (defaults from the catalog), disabled rules, severities."""

    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    disabled: set[str] = field(default_factory=set)
    severity: dict[str, str] = field(default_factory=dict)
    max_findings: int = DEFAULT_MAX_FINDINGS
    source: str | None = None

    def get(self, rule: str, name: str) -> Any:
        """The threshold ``name`` of ``rule`` (the configured value or the default)."""
        given = self.values.get(rule, {})
        if name in given:
            return given[name]
        return RULES[rule].defaults()[name]

    def of(self, rule: str) -> dict[str, Any]:
        """Every threshold of ``rule`` as a dict."""
        return {**RULES[rule].defaults(), **self.values.get(rule, {})}

    def enabled(self, rule: str) -> bool:
        return rule not in self.disabled

    def severity_of(self, rule: str) -> str:
        return self.severity.get(rule, RULES[rule].severity)

    def public(self) -> dict[str, Any]:
        """What differs from the defaults, as JSON data (for the report)."""
        return {
            "source": self.source,
            "max_findings": self.max_findings,
            "disabled": sorted(self.disabled),
            "severity": dict(sorted(self.severity.items())),
            "thresholds": {rule: dict(v) for rule, v in sorted(self.values.items()) if v},
        }


def _check_type(where: str, default: Any, value: Any) -> Any:
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, list):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        kind = "list of strings" if isinstance(default, list) else type(default).__name__
        raise ConfigError(f"{where} must be of type {kind}, got {value!r}")
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        raise ConfigError(f"{where} cannot be negative, got {value!r}")
    return value


def config_from_mapping(data: Mapping[str, Any], source: str = "config") -> AuditConfig:
    """Validate a parsed configuration (the TOML document's structure)."""
    unknown = set(data) - {"audit", "rules"}
    if unknown:
        raise ConfigError(
            f"{source}: unknown table(s) {sorted(unknown)}; use [audit] and [rules.<id>]"
        )
    config = AuditConfig(source=source)
    audit = data.get("audit", {})
    if not isinstance(audit, Mapping) or set(audit) - {"max_findings"}:
        raise ConfigError(f"{source}: [audit] accepts only max_findings")
    if "max_findings" in audit:
        config.max_findings = _check_type(f"{source}: audit.max_findings", 1, audit["max_findings"])
    rules = data.get("rules", {})
    if not isinstance(rules, Mapping):
        raise ConfigError(f"{source}: rules must be tables [rules.<id>]")
    for rule_id, table in rules.items():
        if rule_id not in RULES:
            raise ConfigError(
                f"{source}: unknown rule {rule_id!r} (known: {', '.join(sorted(RULES))})"
            )
        if not isinstance(table, Mapping):
            raise ConfigError(f"{source}: rules.{rule_id} must be a table")
        defaults = RULES[rule_id].defaults()
        values: dict[str, Any] = {}
        for name, value in table.items():
            where = f"{source}: rules.{rule_id}.{name}"
            if name == "enabled":
                if not _check_type(where, True, value):
                    config.disabled.add(rule_id)
            elif name == "severity":
                if value not in SEVERITIES:
                    raise ConfigError(f"{where} must be one of {', '.join(SEVERITIES)}")
                config.severity[rule_id] = value
            elif name in defaults:
                values[name] = _check_type(where, defaults[name], value)
            else:
                known = ", ".join(["enabled", "severity", *defaults])
                raise ConfigError(f"{where}: unknown setting (known: {known})")
        config.values[rule_id] = values
    return config


def load_config(path: str | Path | None) -> AuditConfig:
    """The configuration in the TOML file ``path`` (defaults when None)."""
    if path is None:
        return AuditConfig()
    data = read_toml(path, "audit config", ConfigError)
    return config_from_mapping(data, str(path))
