"""The audit report as text, JSON, Markdown and SARIF 2.1.0.

Keys in a report are already display text (escaped by ``keyid.display_key``);
Markdown escapes them once more so a key full of HTML or table pipes renders as
text. SARIF results carry the Redis subject as a logical location, plus the
physical location code-scanning UIs require (line 1 of the audit config file).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .catalog import CATALOG, RULES, SEVERITIES

FORMATS = ("text", "json", "markdown", "sarif")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_LEVELS = {"critical": "error", "warning": "warning", "info": "note"}
DEFAULT_ARTIFACT = "redis-audit.toml"


def _by_rule(report: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Findings grouped by rule, most severe rule first (report order is kept)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for finding in report["findings"]:
        groups.setdefault(finding["rule"], []).append(finding)
    return list(groups.items())


def _headline(report: dict[str, Any]) -> str:
    s = report["summary"]
    counts = ", ".join(f"{s[name]} {name}" for name in reversed(SEVERITIES))
    target = f" of {report['target']}" if report.get("target") else ""
    return (
        f"redis-dashboard audit{target}: {report['scanned_keys']:,} keys scanned in "
        f"{report['duration_s']:.1f} s; {counts}"
    )


def _evidence_line(evidence: dict[str, Any], limit: int = 300) -> str:
    parts = []
    for name, value in evidence.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        parts.append(f"{name}={text}")
    line = ", ".join(parts)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def to_text(report: dict[str, Any]) -> str:
    lines = [_headline(report), ""]
    for rule_id, findings in _by_rule(report):
        rule = RULES[rule_id]
        lines.append(f"{findings[0]['severity'].upper():8} {rule_id}: {rule.title}")
        for f in findings:
            lines.append(f"  - {f['subject']}: {f['message']}")
            lines.append(f"      {_evidence_line(f['evidence'])}")
        lines += [f"  fix: {rule.fix}", ""]
    for item in report["omitted"]:
        lines.append(f"omitted: {item['findings']} more {item['rule']} findings")
    for item in report["skipped"]:
        lines.append(f"skipped: {item['rule']}: {item['reason']}")
    for item in report["limitations"]:
        lines.append(f"partial: {item['rule']}: {item['reason']}")
    for item in report.get("known_layouts", []):
        lines.append(f"known layout: {_known_layout_line(item)}")
    if not report["findings"]:
        lines.append("no findings")
    return "\n".join(lines).rstrip() + "\n"


def _known_layout_line(item: dict[str, Any]) -> str:
    """One library the scan recognised (docs/rules.md, ``known_layouts``)."""
    where = ", ".join(item["namespaces"]) + (", ..." if item["more_namespaces"] else "")
    return (
        f"{item['library']}: {item['keys']:,} keys ({item['without_ttl']:,} without TTL) "
        f"in {where}; {item['note']}"
    )


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2) + "\n"


_MD_SPECIAL = str.maketrans(
    {c: "\\" + c for c in "\\`*_[]#|~"} | {"<": "&lt;", ">": "&gt;", "&": "&amp;", "\n": " "}
)


def md(text: Any) -> str:
    """Text made inert for Markdown (and the HTML it may contain)."""
    return str(text).translate(_MD_SPECIAL)


def to_markdown(report: dict[str, Any]) -> str:
    s = report["summary"]
    out = [
        "# Redis audit",
        "",
        md(_headline(report)),
        "",
        "| severity | findings |",
        "|---|---|",
        *[f"| {name} | {s[name]} |" for name in reversed(SEVERITIES)],
        "",
    ]
    for rule_id, findings in _by_rule(report):
        rule = RULES[rule_id]
        out += [
            f"## {findings[0]['severity']}: `{rule_id}` {md(rule.title)}",
            "",
            f"**Why:** {rule.why}",
            "",
            f"**Fix:** {rule.fix}",
            "",
            "| subject | finding | evidence |",
            "|---|---|---|",
        ]
        out += [
            f"| {md(f['subject'])} | {md(f['message'])} | {md(_evidence_line(f['evidence']))} |"
            for f in findings
        ]
        out.append("")
    notes = [f"- omitted: {i['findings']} more `{i['rule']}` findings" for i in report["omitted"]]
    notes += [f"- skipped `{i['rule']}`: {md(i['reason'])}" for i in report["skipped"]]
    notes += [f"- partial `{i['rule']}`: {md(i['reason'])}" for i in report["limitations"]]
    if notes:
        out += ["## Not fully checked", "", *notes, ""]
    known = report.get("known_layouts", [])
    if known:
        out += ["## Known layouts (not reported as missing TTLs)", ""]
        out += [f"- {md(_known_layout_line(item))}" for item in known] + [""]
    if not report["findings"]:
        out += ["No findings.", ""]
    return "\n".join(out)


def _sarif_rule(rule: Any) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": "".join(part.title() for part in rule.id.split("-")),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.why},
        "help": {
            "text": f"{rule.why}\n\nFix: {rule.fix}",
            "markdown": f"{rule.why}\n\n**Fix:** {rule.fix}",
        },
        "defaultConfiguration": {"level": SARIF_LEVELS[rule.severity]},
        "properties": {"severity": rule.severity, "tags": ["redis", "reliability"]},
    }


def to_sarif(report: dict[str, Any], artifact: str | None = None) -> str:
    """SARIF 2.1.0 with one run: every catalog rule, one result per finding."""
    uri = artifact or DEFAULT_ARTIFACT
    target = report.get("target") or "redis"
    index = {rule.id: i for i, rule in enumerate(CATALOG)}
    results = []
    for f in report["findings"]:
        fingerprint = hashlib.sha256(f"{target}\0{f['rule']}\0{f['subject']}".encode()).hexdigest()
        results.append(
            {
                "ruleId": f["rule"],
                "ruleIndex": index[f["rule"]],
                "level": SARIF_LEVELS[f["severity"]],
                "message": {"text": f"{f['subject']}: {f['message']}"},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": uri},
                            "region": {"startLine": 1},
                        },
                        "logicalLocations": [
                            {
                                "name": f["subject"],
                                "fullyQualifiedName": f"{target}/{f['subject']}",
                                "kind": "namespace"
                                if f["subject_kind"] == "namespace"
                                else "resource",
                            }
                        ],
                    }
                ],
                "partialFingerprints": {"redisAuditSubject/v1": fingerprint},
                "properties": {
                    "severity": f["severity"],
                    "subjectKind": f["subject_kind"],
                    "evidence": f["evidence"],
                },
            }
        )
    notes = [
        {
            "level": "note",
            "message": {"text": f"{kind} {i['rule']}: {i['reason']}"},
            "descriptor": {"id": i["rule"]},
        }
        for kind, items in (("skipped", report["skipped"]), ("partial", report["limitations"]))
        for i in items
    ]
    run = {
        "tool": {
            "driver": {
                "name": "redis-dashboard",
                "version": report["version"],
                "semanticVersion": report["version"],
                "rules": [_sarif_rule(rule) for rule in CATALOG],
            }
        },
        "automationDetails": {"id": "redis-audit/"},
        "invocations": [{"executionSuccessful": True, "toolExecutionNotifications": notes}],
        "results": results,
        "properties": {"scannedKeys": report["scanned_keys"], "summary": report["summary"]},
    }
    sarif = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}
    return json.dumps(sarif, indent=2) + "\n"


def render(report: dict[str, Any], fmt: str, artifact: str | None = None) -> str:
    """The report in one of :data:`FORMATS`."""
    if fmt == "text":
        return to_text(report)
    if fmt == "json":
        return to_json(report)
    if fmt == "markdown":
        return to_markdown(report)
    if fmt == "sarif":
        return to_sarif(report, artifact)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
