"""Every setting, CLI flag and documented contract is where users look."""

import re
from dataclasses import fields
from pathlib import Path

import pytest

from dashboard.cli import build_parser
from dashboard.config import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_DOC = (ROOT / "docs" / "settings.md").read_text()


def _user_docs() -> str:
    return "\n".join(
        p.read_text() for p in [ROOT / "README.md", *sorted(ROOT.glob("docs/**/*.md"))]
    )


@pytest.mark.parametrize("name", [f.name for f in fields(Settings)])
def test_every_setting_is_documented(name):
    row = next(
        (line for line in SETTINGS_DOC.splitlines() if line.startswith(f"| `{name}` ")), None
    )
    assert row, f"docs/settings.md has no row for setting {name}"
    assert f"`{ENV_PREFIX}{name.upper()}`" in row


def _flags():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for command, subparser in sub.choices.items():
        for action in subparser._actions:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help":
                    yield command, option


@pytest.mark.parametrize(("command", "flag"), sorted(set(_flags())))
def test_every_cli_flag_is_documented(command, flag):
    docs = _user_docs()
    assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", docs), (
        f"{command} {flag} is not mentioned in README.md or docs/"
    )


def test_every_subcommand_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for command in sub.choices:
        assert f"redis-dashboard {command}" in readme


def test_settings_doc_has_no_stale_rows():
    documented = set(re.findall(r"^\| `([a-z_]+)` \| `REDIS_DASHBOARD_", SETTINGS_DOC, re.M))
    assert documented == {f.name for f in fields(Settings)}
