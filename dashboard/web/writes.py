"""The write log (``/writes``): every write action of this dashboard, who, what, when.

Views that write call :func:`record` (or :func:`started` and ``finish`` for a bulk
job); the log is per target, kept in memory (the last 500) and mirrored to the
``dashboard.writes`` logger, so the server's log keeps it for good.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from dashboard.inspect.writelog import WriteLog, WriteRecord
from dashboard.web.pages import page, render
from dashboard.web.state import state

bp = Blueprint("writes", __name__)
NAV = None  # linked from the actions and the footer of pages that write


def who() -> str:
    """The person behind this request, as well as the dashboard knows: the basic-auth
    user (when auth is on) and the client address (the proxy's, behind one)."""
    auth = request.authorization
    user = auth.username if auth is not None and auth.username else "anonymous"
    forwarded = request.headers.get("X-Forwarded-For", "").split(",")[0].strip()
    address = request.remote_addr or "?"
    via = f" (X-Forwarded-For {forwarded[:64]})" if forwarded else ""
    return f"{user}@{address}{via}"


def write_log() -> WriteLog:
    return state().singleton("write_log", WriteLog)


def record(
    action: str, subject: str, detail: dict[str, Any] | None, outcome: str, ok: bool
) -> WriteRecord:
    """Log a finished write action of this request."""
    return write_log().record(who(), state().name, action, subject, detail, outcome=outcome, ok=ok)


def started(action: str, subject: str, detail: dict[str, Any] | None = None) -> WriteRecord:
    """Log a write action that runs on (a bulk job); complete it with ``write_log().finish``."""
    return write_log().record(who(), state().name, action, subject, detail)


@page(bp, "/writes")
def index() -> Any:
    entries = write_log().entries()
    data = {"writes": entries, "allow_writes": state().settings.allow_writes}
    return render("writes/index.html", data)
