"""Locate the data folders (lua/, templates/, static/) in a wheel or a source tree.

A wheel carries them inside the package (see pyproject's force-include); a source
checkout keeps them at the top level beside ``dashboard/``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def resource_dir(name: str) -> Path:
    """Return the folder ``name`` (``lua``, ``templates`` or ``static``)."""
    for candidate in (_PACKAGE_DIR / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"data folder {name!r} not found beside the package or in the source tree; "
        "reinstall redis-dashboard"
    )
