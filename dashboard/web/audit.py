"""Audit report (``/audit``): the rules catalog run as a background job.

Opening the page starts an audit when none ran yet (it only reads); the page polls
a progress fragment until it is done. The last report is kept with its age;
``POST /audit/run`` (CSRF) runs it again. ``/audit.json`` is the same data and
``/audit.md`` the Markdown export. Fields: docs/rules.md.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, redirect, request, url_for

from dashboard.connection import mask_url
from dashboard.inspect.audit import CATALOG, RULES, Audit, AuditConfig, AuditJob
from dashboard.inspect.audit.formats import to_markdown
from dashboard.inspect.keyspace.scan import ScanOptions
from dashboard.web.pages import page, render, wants_json
from dashboard.web.state import state

bp = Blueprint("audit", __name__)
NAV = ("Audit", "audit.index")


def audit_job() -> AuditJob:
    """The app's one audit job (its last report is cached until a re-run)."""
    app_state = state()

    def make() -> Audit:
        settings = app_state.settings
        return Audit(
            app_state.client,
            AuditConfig(),
            ScanOptions.from_settings(settings),
            target=mask_url(settings.url),
        )

    return app_state.singleton("auditjob", lambda: AuditJob(make))


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
    job = audit_job()
    if job.state == "idle":
        job.start()
    report = job.report
    data = {"job": job.snapshot(), "report": report}
    return render("audit/index.html", data, groups=_groups(report), catalog=CATALOG)


@bp.get("/audit/progress")
def progress() -> Any:
    """The progress fragment; once the audit is over it asks the page to reload."""
    job = audit_job()
    snapshot = job.snapshot()
    if snapshot["state"] != "running":
        return Response("", headers={"HX-Refresh": "true"})
    return render("audit/progress.html", {"job": snapshot})


@bp.post("/audit/run")
def run() -> Any:
    """Run the audit again (reads only, so allowed read-only; CSRF checked)."""
    job = audit_job()
    job.start()
    if wants_json() or request.accept_mimetypes.best == "application/json":
        return job.snapshot()
    return redirect(url_for("audit.index"))


@bp.get("/audit.md")
def markdown() -> Any:
    """The last report as Markdown (a file to attach to a ticket or a PR)."""
    report = audit_job().report
    if report is None:
        abort(404, description="no audit has finished yet: open /audit and wait for it")
    return Response(
        to_markdown(report),
        mimetype="text/markdown",
        headers={"Content-Disposition": 'inline; filename="redis-audit.md"'},
    )
