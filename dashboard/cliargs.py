"""What every subcommand shares: exit codes, the one-line error, and flags built from
the Settings table (so a flag, its env variable and its docs cannot drift apart).

Kept apart from ``dashboard.cli`` so subcommands defined elsewhere (``demo``) can use it
without importing the CLI that imports them.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import fields

from dashboard.config import ENV_PREFIX, Settings, SettingsError

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2


class CliError(Exception):
    """A usage or connection problem: printed as one line, exit code 2."""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_setting_flags(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    """One flag per setting, help and default taken from the Settings table."""
    by_name = {f.name: f for f in fields(Settings)}
    for name in names:
        f = by_name[name]
        env = ENV_PREFIX + name.upper()
        help_text = f"{f.metadata['help']} (env {env}; default {f.default!r})"
        if f.metadata.get("secret"):
            help_text = f"{f.metadata['help']} (env {env}; prefer the env variable)"
        if isinstance(f.default, bool):
            parser.add_argument(
                _flag(name), dest=name, action="store_true", default=None, help=help_text
            )
        else:
            parser.add_argument(
                _flag(name), dest=name, type=type(f.default), default=None, help=help_text
            )


def settings_from(args: argparse.Namespace, names: Sequence[str]) -> Settings:
    """Environment first, then the flags the user gave."""
    given = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    try:
        return Settings.from_env().updated(given)
    except SettingsError as exc:
        raise CliError(str(exc)) from exc
