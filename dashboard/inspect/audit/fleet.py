"""Audit reports of several targets (``redis-dashboard audit --targets FILE``), one per
target, in every format the single report has.

A target entry is ``{"name", "url" (masked), "report"}`` or, when it could not be
audited, ``{"name", "url", "error"}``. The exit code (in the CLI) is 2 when any target
failed, else 1 when any report has a finding at or above ``--fail-on``, else 0.
"""

from __future__ import annotations

import json
from typing import Any

from dashboard import __version__

from .catalog import SEVERITIES
from .formats import SARIF_SCHEMA, md, render


def summary(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Findings by severity over every report, and how many targets could not be audited."""
    reports = [e["report"] for e in entries if e.get("report")]
    counts = {s: sum(r["summary"].get(s, 0) for r in reports) for s in SEVERITIES}
    return {
        "targets": len(entries),
        "audited": len(reports),
        "errors": len(entries) - len(reports),
        **counts,
        "total": sum(counts.values()),
    }


def _text(entries: list[dict[str, Any]], fmt: str, artifact: str | None) -> str:
    parts = []
    for e in entries:
        head = f"== {e['name']} ({e['url']}) =="
        if fmt == "markdown":
            head = f"## Target `{md(e['name'])}` ({md(e['url'])})"
        body = render(e["report"], fmt, artifact) if e.get("report") else None
        if body is None:
            body = f"could not be audited: {e['error']}\n"
            if fmt == "markdown":
                body = f"**Could not be audited:** {md(e['error'])}\n"
        elif fmt == "markdown":
            body = body.replace("\n# ", "\n### ").removeprefix("# ")  # nest its headings
        parts.append(f"{head}\n\n{body}")
    s = summary(entries)
    tail = (
        f"{s['targets']} targets, {s['audited']} audited, {s['errors']} failed: "
        f"{s['critical']} critical, {s['warning']} warning, {s['info']} info\n"
    )
    return "\n".join(parts) + "\n" + tail


def _sarif(entries: list[dict[str, Any]], artifact: str | None) -> str:
    runs = []
    for e in entries:
        if e.get("report"):
            run = json.loads(render(e["report"], "sarif", artifact))["runs"][0]
            run["automationDetails"] = {"id": f"redis-audit/{e['name']}/"}
        else:
            run = {
                "tool": {"driver": {"name": "redis-dashboard", "version": __version__}},
                "automationDetails": {"id": f"redis-audit/{e['name']}/"},
                "invocations": [
                    {
                        "executionSuccessful": False,
                        "toolExecutionNotifications": [
                            {"level": "error", "message": {"text": e["error"]}}
                        ],
                    }
                ],
                "results": [],
            }
        run.setdefault("properties", {})["target"] = {"name": e["name"], "url": e["url"]}
        runs.append(run)
    return json.dumps({"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": runs}, indent=2) + "\n"


def render_targets(entries: list[dict[str, Any]], fmt: str, artifact: str | None = None) -> str:
    """The reports of every target in ``fmt`` (text, json, markdown, sarif)."""
    if fmt == "json":
        doc = {"tool": "redis-dashboard", "version": __version__, "targets": entries}
        return json.dumps({**doc, "summary": summary(entries)}, indent=2) + "\n"
    if fmt == "sarif":
        return _sarif(entries, artifact)
    return _text(entries, fmt, artifact)
