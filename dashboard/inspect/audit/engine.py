"""Run the audit: server facts, ONE keyspace scan feeding every key rule, streams,
then every rule of the catalog, into one report (shape in docs/rules.md).

Order matters: facts come first because the hot-keys probe needs the eviction
policy before the scan starts; the scan's ``on_batch`` hands each page, grouped
by namespace (the rollup's own split), to every key observer; stream rules read
the longest streams the scan found.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from dashboard import __version__
from dashboard.connection import is_cluster
from dashboard.inspect.keyspace.rollup import Rollup
from dashboard.inspect.keyspace.scan import Batch, ScanOptions
from dashboard.inspect.keyspace.scanjob import DONE, ScanJob
from dashboard.inspect.layouts import LayoutTally

from . import facts as facts_module
from .catalog import CATALOG, RANK, RULES, SEVERITIES
from .findings import Finding, Skip
from .keyrules import BigCollection, BigString, LongKeyNames, MissingTtl, NoNamespace, Observer
from .keyshape import (
    HotKeyProbe,
    LockDetector,
    LockWithoutTtl,
    Shape,
    StreamCandidates,
    SynchronizedExpiry,
)
from .serverrules import SERVER_RULES, Context
from .streamrules import STREAM_CHECKS, STREAM_RULES, StreamReport
from .thresholds import AuditConfig

KEY_RULES = (
    "missing-ttl",
    "big-string",
    "big-collection",
    "no-namespace",
    "long-key-names",
    "lock-without-ttl",
    "synchronized-expiry",
    "hot-keys",
)
PHASES = ("pending", "facts", "scan", "streams", "rules", "done")


def _connected_db(client: Any) -> int | None:
    if is_cluster(client):
        return 0
    try:
        return int(client.connection_pool.connection_kwargs.get("db") or 0)
    except (AttributeError, TypeError, ValueError):
        return None


class Audit:
    """One audit run over ``client``; :meth:`run` returns the report dict.

    ``progress()`` may be called from another thread while it runs (the web job).
    """

    def __init__(
        self,
        client: Any,
        config: AuditConfig | None = None,
        options: ScanOptions | None = None,
        *,
        target: str | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.target = target  # the masked URL, for the report
        self.config = config or AuditConfig()
        self.options = options or ScanOptions()
        self.clock, self.monotonic = clock, monotonic
        self.phase = "pending"
        self.job: ScanJob | None = None
        self._observers: dict[str, Observer] = {}
        self._skips: dict[str, str] = {}
        self._rollup = Rollup(self.options.delimiter, self.options.depth)
        self._layouts = LayoutTally(self.options.delimiter, self.options.max_namespaces)

    # --- progress --------------------------------------------------------------------

    def progress(self) -> dict[str, Any]:
        job = self.job
        scan = job.snapshot(include_result=False) if job is not None else None
        return {"phase": self.phase, "scan": scan}

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    # --- the run ---------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """The whole audit in the calling thread (the CLI's way)."""
        self.begin()
        snapshot = None
        if self._observers:
            self.phase = "scan"
            snapshot = self.new_job().run()
        return self.finish(snapshot)

    def begin(self) -> None:
        """Phase one: reachability, server facts, and the observers the scan will feed.

        The observer (``dashboard.observer``) runs the phases itself so that one scan
        feeds both the keyspace view and these rules: begin, drive :meth:`new_job`'s
        scan (resuming it after failures), then :meth:`finish`.
        """
        self._started, self._began = self.clock(), self.monotonic()
        self.client.ping()  # an unreachable server is an error, not a report
        self.phase = "facts"
        max_entries = self.config.get("slow-commands", "entries")
        facts = facts_module.gather(self.client, max(1, max_entries))
        self._build_observers(facts)
        self._ctx = Context(self.config, facts, scanned_db=_connected_db(self.client))

    def new_job(self, **options: Any) -> ScanJob:
        """The scan that feeds every key rule (``options``: ScanJob's keyword arguments)."""
        self.phase = "scan"
        self.job = ScanJob(self.client, self.options, on_batch=self._feed, **options)
        return self.job

    def finish(self, snapshot: dict[str, Any] | None) -> dict[str, Any]:
        """Phase three: streams and every rule, over the scan's ``snapshot`` (None: no scan)."""
        ctx = self._ctx
        if snapshot is not None:
            if snapshot["state"] != DONE:
                ctx.scan_error = snapshot["error"] or f"the keyspace scan was {snapshot['state']}"
            elif "shape" in self._observers:
                ctx.shape = self._observers["shape"]  # type: ignore[assignment]
        elif self._observers:
            ctx.scan_error = "the keyspace scan did not run"
        streams = self._streams(ctx)
        self.phase = "rules"
        findings, statuses, omitted = self._evaluate(ctx, streams)
        self.phase = "done"
        return self._report(ctx, snapshot, findings, statuses, omitted, self._started, self._began)

    def _enabled(self, rule: str) -> bool:
        return self.config.enabled(rule)

    def _build_observers(self, facts: facts_module.Facts) -> None:
        opts, config = self.options, self.config
        delimiter, cap = opts.delimiter, opts.max_namespaces
        detector = LockDetector(delimiter, config.get("lock-without-ttl", "lock_words"))
        volatile = config.get("missing-ttl", "volatile_words")
        obs = self._observers
        if self._enabled("missing-ttl"):
            obs["missing-ttl"] = MissingTtl(config, delimiter, cap, detector.is_lock, self._layouts)
        if self._enabled("big-string"):
            obs["big-string"] = BigString(config, delimiter, cap)
        if self._enabled("big-collection"):
            obs["big-collection"] = BigCollection(config, delimiter, cap)
        if self._enabled("no-namespace"):
            obs["no-namespace"] = NoNamespace(config, delimiter, self._layouts)
        if self._enabled("long-key-names"):
            obs["long-key-names"] = LongKeyNames(config, delimiter, cap)
        if self._enabled("lock-without-ttl"):
            obs["lock-without-ttl"] = LockWithoutTtl(detector, config.max_findings)
        if self._enabled("synchronized-expiry"):
            if facts.server_ms is None:
                self._skips["synchronized-expiry"] = facts.time_reason or "TIME unavailable"
            else:
                base, mono = facts.server_ms, self.monotonic()
                now = lambda: base + (self.monotonic() - mono) * 1000  # noqa: E731
                obs["synchronized-expiry"] = SynchronizedExpiry(config, delimiter, cap, now)
        if self._enabled("eviction-policy-mismatch"):
            obs["shape"] = Shape(detector, volatile)
        if any(self._enabled(rule) for rule in STREAM_RULES):
            keep = config.get("unbounded-stream", "max_streams")
            obs["streams"] = StreamCandidates(keep)
        if self._enabled("hot-keys"):
            reason = _lfu_reason(facts)
            if reason:
                self._skips["hot-keys"] = reason
            else:
                obs["hot-keys"] = HotKeyProbe(self.client, config, delimiter)

    def _feed(self, batch: Batch) -> None:
        groups = self._rollup.group(batch.facts)  # the rollup's own split
        self._layouts.add_page(groups)  # marks this page's known-layout keys for the rules
        for observer in self._observers.values():
            observer.add(groups)

    def _streams(self, ctx: Context) -> StreamReport | None:
        candidates = self._observers.get("streams")
        if not isinstance(candidates, StreamCandidates) or ctx.scan_error:
            return None
        self.phase = "streams"
        report = StreamReport(candidates.keys(), candidates.streams)
        report.read(self.client)
        return report

    def _rule_findings(
        self, rule: str, ctx: Context, streams: StreamReport | None
    ) -> list[Finding]:
        if rule in self._skips:
            raise Skip(self._skips[rule])
        if rule in SERVER_RULES:
            return SERVER_RULES[rule](ctx)
        if ctx.scan_error:
            raise Skip(f"needs the keyspace scan: {ctx.scan_error}")
        if rule in STREAM_CHECKS:
            if streams is None:
                raise Skip("the keyspace scan did not run")
            states = streams.check(ctx.limitations.setdefault(rule, []))
            return STREAM_CHECKS[rule](states, self.config)
        observer = self._observers[rule]
        if isinstance(observer, HotKeyProbe) and observer.stopped:
            ctx.limitations.setdefault(rule, []).append(observer.stopped)
        return observer.findings()

    def _evaluate(
        self, ctx: Context, streams: StreamReport | None
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        findings: list[dict[str, Any]] = []
        statuses, omitted = [], []
        for rule in CATALOG:
            status = {
                "id": rule.id,
                "severity": self.config.severity_of(rule.id),
                "title": rule.title,
                "status": "ok",
                "findings": 0,
                "reason": None,
            }
            statuses.append(status)
            if not self._enabled(rule.id):
                status["status"] = "disabled"
                continue
            try:
                found = self._rule_findings(rule.id, ctx, streams)
            except Skip as exc:
                status.update(status="skipped", reason=str(exc))
                continue
            found.sort(key=lambda f: -f.weight)
            extra = len(found) - self.config.max_findings
            observer = self._observers.get(rule.id)
            extra = max(extra, 0) + getattr(observer, "omitted", 0)
            if extra:
                omitted.append({"rule": rule.id, "findings": extra})
            kept = [self._finding_json(f) for f in found[: self.config.max_findings]]
            findings += kept
            status.update(status="findings" if kept else "ok", findings=len(kept) + extra)
        order = {rule.id: i for i, rule in enumerate(CATALOG)}
        findings.sort(key=lambda f: (-RANK[f["severity"]], order[f["rule"]]))
        return findings, statuses, omitted

    def _finding_json(self, finding: Finding) -> dict[str, Any]:
        rule = RULES[finding.rule]
        severity = self.config.severity_of(rule.id)
        if finding.severity is not None and RANK[finding.severity] < RANK[severity]:
            severity = finding.severity
        return {
            "rule": rule.id,
            "severity": severity,
            "subject": finding.subject,
            "subject_kind": finding.subject_kind,
            "title": rule.title,
            "message": finding.message,
            "evidence": finding.evidence,
            "fix": rule.fix,
        }

    def _report(
        self,
        ctx: Context,
        snapshot: dict[str, Any] | None,
        findings: list[dict[str, Any]],
        statuses: list[dict[str, Any]],
        omitted: list[dict[str, Any]],
        started: float,
        began: float,
    ) -> dict[str, Any]:
        summary = {name: sum(f["severity"] == name for f in findings) for name in SEVERITIES}
        scan = None
        if snapshot is not None:
            keep = (
                "state",
                "error",
                "path",
                "duration_s",
                "scanned",
                "analysed",
                "vanished",
                "dbsize",
                "sampling",
            )
            scan = {k: snapshot.get(k) for k in keep}
            scan["estimated"] = bool((snapshot.get("result") or {}).get("estimated"))
        return {
            "tool": "redis-dashboard",
            "target": self.target,
            "version": __version__,
            "scanned_keys": (snapshot or {}).get("scanned", 0),
            "db": ctx.scanned_db,
            "started_at": started,
            "finished_at": self.clock(),
            "duration_s": round(self.monotonic() - began, 3),
            "summary": {**summary, "total": len(findings)},
            "findings": findings,
            "skipped": [
                {"rule": s["id"], "reason": s["reason"]}
                for s in statuses
                if s["status"] == "skipped"
            ],
            "limitations": [
                {"rule": rule, "reason": reason}
                for rule, reasons in ctx.limitations.items()
                for reason in dict.fromkeys(reasons)
            ],
            "omitted": omitted,
            "known_layouts": self._layouts.summary(),
            "rules": statuses,
            "scan": scan,
            "config": self.config.public(),
        }


def _lfu_reason(facts: facts_module.Facts) -> str | None:
    """Why hot keys cannot be measured (None: every node runs an LFU policy)."""
    try:
        nodes = facts.usable("info-memory")
    except Skip as exc:
        return f"needs the eviction policy: {exc}"
    policies = {str(n.data.get("maxmemory_policy")) for n in nodes}
    if all(p.endswith("-lfu") for p in policies):
        return None
    return (
        f"maxmemory-policy is {', '.join(sorted(policies))}: OBJECT FREQ (the LFU counter) "
        "exists only under allkeys-lfu or volatile-lfu"
    )


def run_audit(
    client: Any, config: AuditConfig | None = None, options: ScanOptions | None = None
) -> dict[str, Any]:
    """Audit ``client`` in the calling thread; returns the report (docs/rules.md)."""
    return Audit(client, config, options).run()


def at_or_above(report: dict[str, Any], bar: str) -> list[dict[str, Any]]:
    """The findings with severity at or above ``bar`` (the CLI's --fail-on)."""
    return [f for f in report["findings"] if RANK[f["severity"]] >= RANK[bar]]
