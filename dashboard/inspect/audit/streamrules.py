"""Stream rules: the longest streams the scan found, read with the streams pattern's
read side (:func:`dashboard.patterns.streams.stream_state`: XINFO STREAM/GROUPS/
CONSUMERS, XPENDING with a bounded COUNT, XRANGE only with a COUNT), then judged.
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import RedisError

from dashboard.inspect.errors import CONNECTION_ERRORS, describe_error
from dashboard.patterns.streams import StreamState, StreamStateError, stream_state

from .findings import Finding, Skip, key_text
from .thresholds import AuditConfig

STREAM_RULES = ("unbounded-stream", "stream-consumer-lag", "stream-stuck-pending")
PENDING_SAMPLE = 100
LAG_SCAN_LIMIT = 10_000
MAX_GROUPS = 50
MAX_CONSUMERS = 100


class StreamReport:
    """The states of the inspected streams, or why they could not be read."""

    def __init__(self, candidates: list[tuple[bytes, int]], total: int) -> None:
        self.candidates = candidates
        self.total = total
        self.states: list[tuple[bytes, StreamState]] = []
        self.refused: list[str] = []

    def read(self, client: Any) -> None:
        for key, _length in self.candidates:
            try:
                state = stream_state(
                    client,
                    key,
                    pending_sample=PENDING_SAMPLE,
                    lag_scan_limit=LAG_SCAN_LIMIT,
                    max_groups=MAX_GROUPS,
                    max_consumers=MAX_CONSUMERS,
                )
            except CONNECTION_ERRORS:
                raise
            except StreamStateError:
                continue  # no longer a stream
            except RedisError as exc:
                self.refused.append(f"{key_text(key)}: {describe_error('XINFO/XPENDING', exc)}")
                continue
            if state.exists:
                self.states.append((key, state))

    def check(self, notes: list[str]) -> list[tuple[bytes, StreamState]]:
        """The readable states; :class:`Skip` when every stream was refused."""
        if self.refused and not self.states:
            raise Skip(self.refused[0])
        notes.extend(self.refused[:5])
        if self.total > len(self.candidates):
            notes.append(
                f"{self.total:,} streams found; the {len(self.candidates):,} longest were inspected"
            )
        return self.states


def unbounded_stream(states: list[tuple[bytes, StreamState]], config: AuditConfig) -> list[Finding]:
    max_length = config.get("unbounded-stream", "max_length")
    out = []
    for key, s in states:
        # XTRIM/MAXLEN do not move max-deleted-entry-id; fewer entries than were ever
        # added means something removed entries (a trim or XDEL). Redis < 7 cannot say.
        trimmed = None if s.entries_added is None else s.entries_added > s.length
        if s.length < max_length or trimmed:
            continue
        name = key_text(key)
        how = "never trimmed" if trimmed is False else "not seen trimmed (Redis < 7 cannot tell)"
        out.append(
            Finding(
                "unbounded-stream",
                name,
                f"stream {name} holds {s.length:,} entries and was {how}",
                {
                    "length": s.length,
                    "entries_added": s.entries_added,
                    "max_deleted_id": s.max_deleted_id,
                    "trimmed": trimmed,
                    "first_entry_age_ms": s.first_age_ms,
                    "groups": len(s.groups),
                },
                subject_kind="stream",
                weight=s.length,
            )
        )
    return out


def _group_subject(key: bytes, group: str) -> str:
    return f"{key_text(key)} (group {group})"


def consumer_lag(states: list[tuple[bytes, StreamState]], config: AuditConfig) -> list[Finding]:
    max_lag = config.get("stream-consumer-lag", "max_lag")
    out = []
    for key, s in states:
        for g in s.groups:
            if g.lag is None or g.lag < max_lag:
                continue
            at_least = "at least " if g.lag_is_lower_bound else ""
            out.append(
                Finding(
                    "stream-consumer-lag",
                    _group_subject(key, g.name),
                    f"group {g.name} of {key_text(key)} has {at_least}{g.lag:,} entries "
                    f"not yet delivered ({g.consumers} consumers)",
                    {
                        "stream": key_text(key),
                        "group": g.name,
                        "lag": g.lag,
                        "lag_source": g.lag_source,
                        "lag_is_lower_bound": g.lag_is_lower_bound,
                        "consumers": g.consumers,
                        "pending": g.pending,
                        "last_delivered_id": g.last_delivered_id,
                        "stream_length": s.length,
                    },
                    subject_kind="consumer-group",
                    weight=g.lag,
                )
            )
    return out


def stuck_pending(states: list[tuple[bytes, StreamState]], config: AuditConfig) -> list[Finding]:
    min_idle = config.get("stream-stuck-pending", "min_idle_ms")
    out = []
    for key, s in states:
        for g in s.groups:
            idle = g.oldest_pending_idle_ms
            if not g.pending or idle is None or idle < min_idle:
                continue
            holders = [
                {"name": c.name, "pending": c.pending, "idle_ms": c.idle_ms}
                for c in sorted(g.consumer_list, key=lambda c: -c.pending)
                if c.pending
            ]
            out.append(
                Finding(
                    "stream-stuck-pending",
                    _group_subject(key, g.name),
                    f"group {g.name} of {key_text(key)} has {g.pending:,} pending entries, "
                    f"idle up to {idle / 1000:,.0f} s",
                    {
                        "stream": key_text(key),
                        "group": g.name,
                        "pending": g.pending,
                        "oldest_pending_id": g.oldest_pending_id,
                        "max_idle_ms": idle,
                        "max_delivery_count": g.max_delivery_count,
                        "sampled": g.pending_sampled,
                        "consumers_with_pending": holders[:5],
                    },
                    subject_kind="consumer-group",
                    weight=idle,
                )
            )
    return out


STREAM_CHECKS = {
    "unbounded-stream": unbounded_stream,
    "stream-consumer-lag": consumer_lag,
    "stream-stuck-pending": stuck_pending,
}
