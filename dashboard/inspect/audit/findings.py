"""What rules produce: findings, and the reasons a rule could not run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dashboard.keyid import display_key

ROOT = "(root)"
OTHER = "(other)"
EXAMPLE_KEY_LIMIT = 200  # bytes of a key shown in evidence


@dataclass
class Finding:
    """One problem about one subject (a namespace, a key, a setting, a command...).

    ``severity`` None means the rule's (configured) severity; a rule may only lower it
    for a finding (missing-ttl does, for namespaces that look deliberate).
    """

    rule: str
    subject: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    subject_kind: str = "namespace"
    severity: str | None = None
    weight: float = 0.0  # orders findings of one rule (biggest first) before capping


class Skip(Exception):
    """A rule cannot run: a source it needs is refused, missing or not applicable."""


def key_text(key: bytes) -> str:
    """A key for evidence: escaped (see keyid.display_key) and bounded."""
    return display_key(key, EXAMPLE_KEY_LIMIT)


def ns_text(ns: tuple[bytes, ...] | None, delimiter: bytes) -> str:
    """A namespace for display: ``cache:product``, ``(root)``, or ``(other)`` past the cap."""
    if ns is None:
        return OTHER
    return display_key(delimiter.join(ns), EXAMPLE_KEY_LIMIT) if ns else ROOT


def node_subject(subject: str, address: str | None) -> str:
    """A server-level subject, with the node's address on a cluster."""
    return subject if address is None else f"{subject} @ {address}"
