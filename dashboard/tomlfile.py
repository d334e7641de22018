"""Reading the TOML files users give (audit thresholds, detectors, targets): one place
that turns a missing file or a syntax error into one line naming the file."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any


def read_toml(path: str | Path, what: str, error: type[Exception]) -> dict[str, Any]:
    """The parsed file; ``error(message)`` names ``what`` and ``path`` when it cannot be
    read or is not TOML (the decoder's message gives a line and column, never content)."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{what} {path} is not valid TOML: {exc}") from None
