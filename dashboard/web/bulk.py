"""Bulk fixes from audit findings (``/bulk``): a dry run, a confirmation, then the job.

``/bulk?rule=missing-ttl&ns=<namespace id>`` describes what would be selected (the
keys of that namespace the rule counts) and offers the actions the rule allows.
``POST /bulk/dryrun`` starts a dry run (reads only: allowed read-only too), whose page
(``/bulk/job/<id>``) shows its progress and then the count; with ``--allow-writes``
it offers ``POST /bulk/apply`` naming exactly that (action, namespace, count). The
apply job is throttled, logged (``/writes``) and reported; a keyspace re-scan is
asked for when it changed something, so the audit shows the fix.

The namespace id is the keyspace view's node id (base64url of the namespace path) or
``(root)`` for keys outside every namespace.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, redirect, request, url_for

from dashboard.inspect.keyspace.bulk import (
    RULE_ACTIONS,
    BulkAction,
    BulkError,
    BulkJob,
    BulkJobs,
    Selector,
)
from dashboard.inspect.keyspace.keyactions import check_ttl
from dashboard.inspect.keyspace.scan import ScanOptions
from dashboard.keyid import decode_key, encode_key, parse_display
from dashboard.web import writes
from dashboard.web.keyview import READ_ONLY_REASON
from dashboard.web.pages import page, render, wants_json
from dashboard.web.state import state

bp = Blueprint("bulk", __name__)
NAV = None  # reached from audit findings and the keyspace view
ROOT_ID = "(root)"
DEFAULT_TTL_S = 86_400


def namespace_id(subject: str, delimiter: bytes) -> str | None:
    """The ``ns`` id of an audit finding's subject; None when it names no namespace
    (``(other)``, or a name cut short for display)."""
    if subject == ROOT_ID:
        return ROOT_ID
    if subject == "(other)" or subject.endswith(" bytes)"):
        return None
    return encode_key(parse_display(subject))


def _namespace(ns_id: str, delimiter: bytes) -> tuple[bytes, ...]:
    if ns_id == ROOT_ID:
        return ()
    try:
        return tuple(decode_key(ns_id).split(delimiter))
    except ValueError as exc:
        abort(400, description=f"ns: {exc}")


def _jobs() -> BulkJobs:
    return state().singleton("bulk_jobs", BulkJobs)


def _options() -> ScanOptions:
    return ScanOptions.from_settings(state().settings)


def _selector(values: Any) -> tuple[Selector, str]:
    rule, ns_id = values.get("rule", ""), values.get("ns", "")
    if not ns_id:
        abort(400, description="which namespace? pass ns=<namespace id> (links on /audit have it)")
    options = _options()
    config = state().observer.keyspace.audit_config  # the thresholds the audit used
    namespace = _namespace(ns_id, options.delimiter)
    try:
        return Selector.for_finding(rule, namespace, options, config), ns_id
    except BulkError as exc:
        abort(exc.status, description=str(exc))


def _finding(selector: Selector) -> dict[str, Any] | None:
    """The last audit's finding this selector comes from, if it is still there."""
    picture = state().observer.keyspace.picture
    report = None if picture is None else picture.get("audit")
    for f in (report or {}).get("findings", []):
        if f["rule"] == selector.rule and f["subject"] == selector.path:
            return f
    return None


def _action(values: Any, rule: str) -> BulkAction:
    kind = values.get("action", RULE_ACTIONS.get(rule, ("expire",))[0])
    if kind not in RULE_ACTIONS.get(rule, ()):
        abort(400, description=f"{rule} allows {', '.join(RULE_ACTIONS.get(rule, ()))}, not {kind}")
    try:
        ttl = check_ttl(values.get("ttl") or DEFAULT_TTL_S) if kind == "expire" else None
        spread = int(values.get("spread") or 0)
        return BulkAction(kind, ttl, spread)
    except (ValueError, BulkError) as exc:
        abort(400, description=str(exc))


def _writes() -> dict[str, Any]:
    allowed = state().settings.allow_writes
    return {"available": allowed, "reason": None if allowed else READ_ONLY_REASON}


@page(bp, "/bulk")
def index() -> Any:
    """What a bulk fix of one finding would select, and the actions it allows."""
    selector, ns_id = _selector(request.args)
    data = {
        "rule": selector.rule,
        "ns": ns_id,
        "namespace": selector.path,
        "selects": selector.describe(),
        "actions": list(RULE_ACTIONS[selector.rule]),
        "default_ttl_s": DEFAULT_TTL_S,
        "finding": _finding(selector),
        "writes": _writes(),
        "jobs": [j.public() for j in _jobs().recent() if j.selector == selector][:5],
    }
    return render("bulk/index.html", data)


def _job_answer(job: BulkJob, status: int = 303) -> Any:
    if wants_json() or request.accept_mimetypes.best == "application/json":
        return {"job": job.public()}, 202
    return redirect(url_for("bulk.job", job_id=job.id), code=status)


@bp.post("/bulk/dryrun")
@bp.post("/bulk/dryrun.json", endpoint="dryrun_json")
def dryrun() -> Any:
    """Count what an action would change (reads only; allowed read-only)."""
    selector, _ns = _selector(request.form)
    action = _action(request.form, selector.rule)
    s = state().settings
    job = BulkJob(selector, action, False, _options(), s.scan_throttle_ms, writes.who())
    try:
        _jobs().start(job, state().client)
    except BulkError as exc:
        abort(exc.status, description=str(exc))
    return _job_answer(job)


@bp.post("/bulk/apply")
@bp.post("/bulk/apply.json", endpoint="apply_json")
def apply() -> Any:
    """Do what a finished dry run counted (``job=<dry-run id>``, ``confirm=yes``)."""
    if not state().settings.allow_writes:
        abort(403, description=f"{READ_ONLY_REASON}; nothing was sent to Redis.")
    dry = _jobs().get(request.form.get("job", ""))
    if dry is None or dry.apply:
        abort(404, description="no such dry run (it may be from before a restart): count again")
    if dry.state != "done":
        abort(409, description=f"the dry run is {dry.state}: apply needs a finished count")
    if request.form.get("confirm") != "yes":
        abort(400, description="confirm=yes is required: the confirmation names what will change")
    s = state().settings
    job = BulkJob(
        dry.selector,
        dry.action,
        True,
        _options(),
        s.scan_throttle_ms,
        writes.who(),
        dry_run_of=dry.id,
    )
    entry = writes.started(
        f"bulk {dry.action.kind}",
        f"{dry.selector.describe()}",
        {"job": job.id, "does": dry.action.describe(), "dry_run_counted": dry.would_change},
    )
    log, observer = writes.write_log(), state().observer

    def finished(done: BulkJob) -> None:
        report = done.public()
        outcome = (
            f"{done.state}: changed {report['changed']:,} of {report['would_change']:,} selected "
            f"keys ({report['skipped']:,} unchanged) in {report['steps']:,} steps"
            + (f"; {done.error}" if done.error else "")
        )
        log.finish(entry, outcome, done.state == "done")
        if done.changed:
            observer.rescan(f"after bulk {done.action.kind} on {done.selector.path}")

    try:
        _jobs().start(job, state().client, on_done=finished)
    except BulkError as exc:
        log.finish(entry, f"not started: {exc}", False)
        abort(exc.status, description=str(exc))
    return _job_answer(job)


@page(bp, "/bulk/job/<job_id>")
def job(job_id: str) -> Any:
    """A job's progress, then its count (dry run) or report (apply)."""
    found = _jobs().get(job_id)
    if found is None:
        abort(404, description="no such bulk job (jobs live in this dashboard process only)")
    ns_id = (
        ROOT_ID
        if not found.selector.namespace
        else encode_key(found.selector.delimiter.join(found.selector.namespace))
    )
    data = {"job": found.public(), "ns": ns_id, "writes": _writes()}
    return render("bulk/job.html", data)


@bp.post("/bulk/job/<job_id>/cancel")
def cancel(job_id: str) -> Any:
    found = _jobs().get(job_id)
    if found is None:
        abort(404, description="no such bulk job")
    found.cancel()
    return _job_answer(found)
