"""The per-rule part of docs/rules.md, rendered from the catalog.

``python -m dashboard.inspect.audit.catalog_doc docs/rules.md`` rewrites the block
between ``<!-- rules:begin -->`` and ``<!-- rules:end -->``; tests/test_audit_docs.py
fails when the page and the catalog disagree.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from .catalog import CATALOG, SOURCES


def _value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, str) else str(value)


def catalog_markdown() -> str:
    """The per-rule sections of docs/rules.md (between its markers), from the catalog."""
    out = []
    for rule in CATALOG:
        sources = ", ".join(SOURCES[s] for s in rule.sources)
        out += [f"### `{rule.id}`", "", f"**{rule.title}** · severity: **{rule.severity}**", ""]
        out += [f"Needs: {sources}.", "", f"Why: {rule.why}", "", f"Fix: {rule.fix}", ""]
        if rule.detail:
            out += [f"How: {rule.detail}", ""]
        if rule.thresholds:
            out += ["| threshold | default | meaning |", "|---|---|---|"]
            out += [f"| `{t.name}` | `{_value(t.default)}` | {t.help} |" for t in rule.thresholds]
            out.append("")
    return "\n".join(out)


def update_docs(path: str) -> None:
    """Rewrite the generated block of docs/rules.md from this table."""
    doc = Path(path)
    text = doc.read_text()
    begin = re.search(r"<!-- rules:begin[^>]*-->\n", text)
    end = text.index("<!-- rules:end -->")
    if begin is None:
        raise ValueError(f"{path} has no <!-- rules:begin --> marker")
    doc.write_text(text[: begin.end()] + catalog_markdown() + "\n" + text[end:])


if __name__ == "__main__":
    update_docs(sys.argv[1] if len(sys.argv) > 1 else "docs/rules.md")
