"""The pattern layer's docs keep up with the code: twins, scripts and resend rules."""

import re
from pathlib import Path

from dashboard.patterns import aio
from dashboard.patterns.scripts import available

ROOT = Path(__file__).resolve().parent.parent
INDEX = (ROOT / "docs" / "patterns.md").read_text()
PAGES = "\n".join(p.read_text() for p in sorted((ROOT / "docs" / "patterns").glob("*.md")))


def test_every_async_twin_is_documented_on_a_pattern_page():
    for name in aio.__all__:
        assert re.search(rf"\b{name}\b", PAGES), f"docs/patterns/*.md never mention {name}"
        assert name in INDEX, f"docs/patterns.md does not list {name}"


def test_every_script_says_what_a_lost_reply_does():
    table = INDEX.split("## Lost replies", 1)[1].split("\n## ", 1)[0]
    for name in available():
        row = next((line for line in table.splitlines() if f"lua/{name}.lua" in line), None)
        assert row, f"docs/patterns.md 'Lost replies' has no row for lua/{name}.lua"
        assert "resent" in row


def test_every_pattern_page_has_its_asyncio_section():
    for page in sorted((ROOT / "docs" / "patterns").glob("*.md")):
        assert "## asyncio" in page.read_text(), f"{page.name} has no asyncio section"
