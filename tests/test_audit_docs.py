"""docs/rules.md and the code catalog must agree: ids, titles, severities, thresholds."""

import re
from pathlib import Path

import pytest

from dashboard.inspect.audit import CATALOG, run_audit
from dashboard.inspect.audit.catalog_doc import catalog_markdown

DOC = (Path(__file__).resolve().parent.parent / "docs" / "rules.md").read_text()
CONFIG_ONLY = {"no-maxmemory", "default-user-nopass"}
BLOCK = re.search(r"<!-- rules:begin[^>]*-->\n(.*)<!-- rules:end -->", DOC, re.S)


def _sections() -> dict[str, str]:
    assert BLOCK, "docs/rules.md lost its <!-- rules:begin --> ... <!-- rules:end --> block"
    parts = re.split(r"^### `([a-z0-9-]+)`\n", BLOCK.group(1), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_doc_lists_exactly_the_catalog_rules_in_order():
    assert list(_sections()) == [rule.id for rule in CATALOG]


@pytest.mark.parametrize("rule", CATALOG, ids=lambda rule: rule.id)
def test_each_rule_section_matches_the_code(rule):
    text = _sections()[rule.id]
    head = re.search(r"^\*\*(.+)\*\* · severity: \*\*(\w+)\*\*$", text, re.M)
    assert head, f"{rule.id}: no title/severity line"
    assert (head.group(1), head.group(2)) == (rule.title, rule.severity)
    assert re.search(r"^Why: \S", text, re.M) and re.search(r"^Fix: \S", text, re.M)
    if rule.id not in CONFIG_ONLY:  # a server setting: no module of ours does it
        assert "`dashboard." in text.split("Fix:", 1)[1], f"{rule.id}: fix names no module"
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| `([^`]*)` \|", text, re.M))
    expected = {t.name: t.default for t in rule.thresholds}
    assert set(rows) == set(expected), f"{rule.id}: thresholds differ"
    for name, default in expected.items():
        shown = rows[name]
        if isinstance(default, list):
            assert shown == "[" + ", ".join(f'"{v}"' for v in default) + "]"
        else:
            assert type(default)(shown) == default, f"{rule.id}.{name}: {shown} != {default}"


def test_generated_block_is_current():
    assert BLOCK.group(1).strip() == catalog_markdown().strip(), (
        "docs/rules.md is stale: regenerate its rules block with "
        "`python -m dashboard.inspect.audit.catalog_doc docs/rules.md`"
    )


def _report_section() -> str:
    match = re.search(r"^## Report.*?(?=^## )", DOC, re.S | re.M)
    assert match
    return match.group(0)


def test_every_report_field_is_documented(fake):
    fake.set("lock:{x}", "t")
    report = run_audit(fake)
    section = _report_section()
    missing = [name for name in report if f"`{name}`" not in section]
    missing += [name for name in report["findings"][0] if f"`{name}`" not in section]
    assert not missing, f"undocumented report fields: {missing}"


def test_audit_json_twin_fields_are_documented(web):
    data = web.get("/audit.json").get_json()
    section = _report_section()
    assert set(data) == {"job", "freshness", "report"}
    missing = [name for name in [*data, *data["job"]] if f"`{name}`" not in section]
    assert not missing, f"undocumented job fields: {missing}"
