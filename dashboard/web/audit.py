"""Audit report (``/audit``): the rules catalog, run with every keyspace scan.

The observer's keyspace cycle audits what its scan saw, so /audit and /keyspace name
the same scan (id, time, key count). The last report is kept with its age;
``POST /audit/run`` (CSRF) starts a new scan, or joins the one running. ``/audit.json``
is the same data and ``/audit.md`` the Markdown export. Fields: docs/rules.md.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, redirect, request, url_for

from dashboard.inspect.audit import CATALOG, RULES
from dashboard.inspect.audit.formats import to_markdown
from dashboard.web.pages import page, render, wants_json
from dashboard.web.picture import version
from dashboard.web.state import state

bp = Blueprint("audit", __name__)
NAV = ("Audit", "audit.index")


def _job(cycle: dict[str, Any], report: dict[str, Any] | None) -> dict[str, Any]:
    """The audit's run as the page shows it: the keyspace cycle that produces it."""
    running = cycle.get("running") or {}
    finished = report["finished_at"] if report else None
    return {
        "state": "running"
        if cycle["state"] == "running"
        else ("done" if report else cycle["state"]),
        "error": cycle["error"],
        "phase": running.get("phase"),
        "scan": running.get("scan"),
        "scan_id": cycle["scan_id"],
        "finished_at": finished,
        "age_s": None if cycle["age_ms"] is None else round(cycle["age_ms"] / 1000, 1),
    }


class AuditHandle:
    """The playground's view of the audit (``report``, ``state``, ``error``, ``start``):
    the observer's keyspace cycle, which runs the audit with every scan."""

    def __init__(self, observer: Any) -> None:
        self.observer = observer

    @property
    def report(self) -> dict[str, Any] | None:
        picture = self.observer.keyspace.picture
        return None if picture is None else picture["audit"]

    @property
    def state(self) -> str:
        return self.snapshot()["state"]

    @property
    def error(self) -> str | None:
        return self.observer.keyspace.error

    def start(self) -> bool:
        return self.observer.rescan("playground")

    def snapshot(self) -> dict[str, Any]:
        return _job(self.observer.keyspace.status(), self.report)


def audit_job() -> AuditHandle:
    """The audit as the playground drives it."""
    return AuditHandle(state().observer)


def _groups(report: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Findings grouped by rule, in report order (most severe first)."""
    if not report:
        return []
    groups: dict[str, dict[str, Any]] = {}
    for finding in report["findings"]:
        rule = RULES[finding["rule"]]
        group = groups.setdefault(
            rule.id,
            {
                "rule": rule.id,
                "title": rule.title,
                "severity": finding["severity"],
                "why": rule.why,
                "fix": rule.fix,
                "findings": [],
            },
        )
        group["findings"].append(finding)
    return list(groups.values())


@page(bp, "/audit")
def index() -> Any:
    observer = state().observer
    picture, cycle = observer.scan_picture(wait_s=state().settings.first_wait_s)
    report = None if picture is None else picture["audit"]
    data = {
        "job": _job(cycle, report),
        "freshness": observer.keyspace.freshness(),
        "report": report,
    }
    running = (cycle["running"] or {}).get("id")
    return render(
        "audit/index.html",
        data,
        groups=_groups(report),
        catalog=CATALOG,
        version=version(data["freshness"], cycle["state"], cycle["error"], running),
    )


@bp.get("/audit/progress")
def progress() -> Any:
    """The progress fragment; once the audit is over it asks the page to reload."""
    _picture, cycle = state().observer.scan_picture()
    job = _job(cycle, None)
    if job["state"] != "running":
        return Response("", headers={"HX-Refresh": "true"})
    return render("audit/progress.html", {"job": job})


@bp.post("/audit/run")
def run() -> Any:
    """Run the audit again: a new keyspace scan (reads only, so allowed read-only; CSRF)."""
    observer = state().observer
    observer.rescan("Re-run audit button")
    if wants_json() or request.accept_mimetypes.best == "application/json":
        return _job(observer.keyspace.status(), None)
    return redirect(url_for("audit.index"))


@bp.get("/audit.md")
def markdown() -> Any:
    """The last report as Markdown (a file to attach to a ticket or a PR)."""
    picture, _cycle = state().observer.scan_picture()
    report = None if picture is None else picture["audit"]
    if report is None:
        abort(404, description="no audit has finished yet: open /audit and wait for it")
    return Response(
        to_markdown(report),
        mimetype="text/markdown",
        headers={"Content-Disposition": 'inline; filename="redis-audit.md"'},
    )
