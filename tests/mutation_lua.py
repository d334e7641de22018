"""Mutation testing of lua/*.lua: operator flips, one at a time, each run against the
tests that cover its script; every flip must be killed (a test fails).

Run through ``tests/mutation lua [SCRIPT ...]`` (docs/testing.md). Nothing here knows
what a script says: the flips are found by scanning each script's code (comments and
strings skipped), so a script that changes or appears is mutated as it is then. A
script without an entry in :data:`SCRIPT_TESTS` stops the run (and
tests/test_mutation_tools.py fails): every script needs tests that would notice.

The work happens in a copy of the source tree under a temporary folder, so the
checkout is never modified, even when the run is interrupted.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "lua"
DOC = ROOT / "docs" / "testing.md"

_CACHE = [
    "tests/test_lua_edges.py",
    "tests/test_cache.py",
    "tests/test_patterns_resend.py",
    "tests/test_async_patterns.py",
]
_LOCKS = [
    "tests/test_lock_info.py",
    "tests/test_locks.py",
    "tests/test_lock_ownership.py",
    "tests/test_patterns_resend.py",
    "tests/test_async_patterns.py",
]
_LIMITS = [
    "tests/test_ratelimit_edges.py",
    "tests/test_lua_edges.py",
    "tests/test_ratelimit.py",
    "tests/test_properties.py",
    "tests/test_patterns_resend.py",
    "tests/test_async_patterns.py",
]
_SESSIONS = [
    "tests/test_lua_edges.py",
    "tests/test_sessions.py",
    "tests/test_patterns_resend.py",
    "tests/test_async_patterns.py",
]
# script -> the tests that run it (fastest first: a flip stops at its first failure).
SCRIPT_TESTS: dict[str, list[str]] = {
    "cache_store": _CACHE,
    "set_if_absent": _CACHE,
    "compare_and_delete": ["tests/test_scripts.py", *_CACHE, "tests/test_live_views.py"],
    "leaderboard_around": ["tests/test_leaderboard.py"],
    "lock_acquire": _LOCKS,
    "lock_extend": _LOCKS,
    "lock_release": [*_LOCKS, "tests/test_live_views.py"],
    "lock_wait": _LOCKS,
    "ratelimit_fixed": _LIMITS,
    "ratelimit_sliding": _LIMITS,
    "ratelimit_gcra": _LIMITS,
    "scan_batch": [
        "tests/test_lua_edges.py",
        "tests/test_scan.py",
        "tests/test_scan_properties.py",
        "tests/test_cluster_moved.py",
        "tests/test_parser.py",
    ],
    "session_create": _SESSIONS,
    "session_index_add": _SESSIONS,
    "session_touch": _SESSIONS,
}

# One token class each: the flips of a token (the brief's list: comparisons,
# arithmetic, boolean operators and constants, 0 <-> 1, not removed, floor <-> ceil).
SWAPS = {
    "==": ["~="],
    "~=": ["=="],
    "<": ["<="],
    "<=": ["<"],
    ">": [">="],
    ">=": [">"],
    "+": ["-"],
    "-": ["+"],
    "*": ["/"],
    "/": ["*"],
    "and": ["or"],
    "or": ["and"],
    "true": ["false"],
    "false": ["true"],
    "not": [""],
    "floor": ["ceil"],
    "ceil": ["floor"],
}
_TOKEN = re.compile(
    r"""
    (?P<comment>--\[(?P<ceq>=*)\[.*?\](?P=ceq)\]|--[^\n]*)
  | (?P<string>\[(?P<seq>=*)\[.*?\](?P=seq)\]|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')
  | (?P<number>0[xX][0-9a-fA-F]+|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|~=|<=|>=|\.\.\.|\.\.|[-+*/%^#<>=(){}\[\];:,.])
  | (?P<space>\s+)
    """,
    re.S | re.X,
)
# After one of these, a ``-`` is unary (a sign, not a subtraction: flipping it to
# ``+`` is a syntax error Lua reports at load, not a logic change worth a run).
_OPERAND_ENDS = {"number", "name", "string", ")", "]", "}"}
# Lua's string.sub takes a start of 0 as 1: flipping that 1 changes nothing.
_STRING_SUB_START = re.compile(r"(?:\bstring\.sub\(\s*[^,()]+,|:sub\()\s*\Z")
_KEYWORDS = {"and", "or", "not", "return", "if", "then", "elseif", "else", "local", "in", "do"}


@dataclass(frozen=True)
class Flip:
    script: str
    line: int
    start: int
    end: int
    before: str
    after: str

    def apply(self, source: str) -> str:
        return source[: self.start] + self.after + source[self.end :]

    def __str__(self) -> str:
        return f"{self.script}.lua:{self.line}: {self.change}"

    @property
    def change(self) -> str:
        return f"{self.before} -> {self.after or '(removed)'}"


def equivalents() -> dict[tuple[str, str, str, int], str]:
    """Flips docs/testing.md lists as equivalent, by script, code of the line, flip and
    which of that line's same flips it is (1: the leftmost):
    ``| `script` | `code` | `flip` | n | why |``. A listed line that changes is flipped
    again."""
    if not DOC.exists():
        return {}
    row = re.compile(r"^\| `([\w-]+)` \| `(.+?)` \| `(.+?)` \| (\d+) \| (.+?) \|$", re.M)
    return {(m[0], m[1], m[2], int(m[3])): m[4] for m in row.findall(DOC.read_text())}


def keyed(script: str, source: str) -> Iterator[tuple[tuple[str, str, str, int], Flip]]:
    """Each flip of ``source`` with its key in :func:`equivalents`."""
    seen: dict[tuple[int, str], int] = {}
    for flip in flips(script, source):
        n = seen[flip.line, flip.change] = seen.get((flip.line, flip.change), 0) + 1
        yield (script, line_of(source, flip), flip.change, n), flip


def line_of(source: str, flip: Flip) -> str:
    return source.splitlines()[flip.line - 1].strip()


def flips(script: str, source: str) -> Iterator[Flip]:
    """Every flip of ``source``'s code, in order."""
    previous = None  # kind (or operator text) of the last significant token
    for match in _TOKEN.finditer(source):
        kind = match.lastgroup
        if kind in ("space", "comment"):
            continue
        text = match.group(0)
        line = source.count("\n", 0, match.start()) + 1
        here = (match.start(), match.end())
        if kind == "string" or kind is None:
            previous = "string"
            continue
        if kind == "number":
            if not (text == "1" and _STRING_SUB_START.search(source, 0, here[0])):
                yield from _number_flips(script, line, here, text)
        elif kind == "op" and text == "-" and previous not in _OPERAND_ENDS:
            pass  # unary minus
        elif text in SWAPS and (kind == "op" or kind == "name"):
            for other in SWAPS[text]:
                end = here[1] + (1 if other == "" and source[here[1] : here[1] + 1] == " " else 0)
                yield Flip(script, line, here[0], end, text, other)
        if kind == "name" and text in _KEYWORDS:
            previous = "keyword"
        elif kind == "op":
            previous = text
        else:
            previous = kind


def _number_flips(script: str, line: int, here: tuple[int, int], text: str) -> Iterator[Flip]:
    """0 <-> 1: off-by-one at the bottom, and returns of 0/1 swapped (bigger constants
    are units and sizes, where one more or less is not a different program)."""
    if text in ("0", "1"):
        yield Flip(script, line, here[0], here[1], text, "1" if text == "0" else "0")


def _source(script: str) -> str:
    return (LUA / f"{script}.lua").read_text()


def _copy_tree(into: Path) -> None:
    for name in ("dashboard", "lua", "templates", "static", "tests", "docs", "bench"):
        shutil.copytree(
            ROOT / name, into / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, into / name)


def _run_tests(tree: Path, tests: list[str], timeout: float) -> tuple[str, float]:
    """``killed``, ``survived`` or ``timeout`` for the tree as it is now."""
    began = time.monotonic()
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    env = {**_env(), "PYTHONPATH": str(tree)}
    try:
        done = subprocess.run(
            command, cwd=tree, env=env, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - began
    return ("survived" if done.returncode == 0 else "killed"), time.monotonic() - began


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("REDIS_DASHBOARD_")}


def _survivors_of(log: Path) -> set[tuple[str, int, str]]:
    """(script, line, flip) of every flip a previous run's output says survived."""
    found = re.findall(r"^SURVIVED (\w+)\.lua:(\d+): (.+)$", log.read_text(), re.M)
    return {(script, int(line), change) for script, line, change in found}


def main(argv: list[str]) -> int:
    only = None
    if argv[:1] == ["--again"]:  # only what survived the run whose output is given
        only = _survivors_of(Path(argv[1]))
        argv = sorted({script for script, _, _ in only})
    scripts = argv or sorted(p.stem for p in LUA.glob("*.lua"))
    unmapped = [s for s in scripts if s not in SCRIPT_TESTS]
    if unmapped:
        print(f"no tests mapped for {unmapped}: add them to SCRIPT_TESTS", file=sys.stderr)
        return 2
    survivors: list[Flip] = []
    total = waived = 0
    waivers = equivalents()
    with tempfile.TemporaryDirectory(prefix="lua-mutation-") as tmp:
        tree = Path(tmp)
        _copy_tree(tree)
        for script in scripts:
            path = tree / "lua" / f"{script}.lua"
            source = path.read_text()
            tests = SCRIPT_TESTS[script]
            status, clean_s = _run_tests(tree, tests, timeout=1800)
            if status != "survived":
                print(f"{script}: its tests fail without any flip; fix them first", file=sys.stderr)
                return 2
            timeout = max(60.0, 3 * clean_s)
            for key, flip in keyed(script, source):
                if only is not None and (script, flip.line, flip.change) not in only:
                    continue
                total += 1
                why = waivers.get(key)
                if why:
                    waived += 1
                    print(f"equivalent       {flip}  ({why})", flush=True)
                    continue
                path.write_text(flip.apply(source))
                try:
                    status, took = _run_tests(tree, tests, timeout)
                finally:
                    path.write_text(source)
                print(f"{status:<8} {took:6.1f}s  {flip}", flush=True)
                if status == "survived":
                    survivors.append(flip)
    killed = total - waived - len(survivors)
    print(f"\nlua flips: {total}, killed {killed}, equivalent {waived}, survived {len(survivors)}")
    for flip in survivors:
        print("SURVIVED", flip)
    used = {key for s in scripts for key, _ in keyed(s, _source(s))}  # keys as waived
    for stale in sorted(set(waivers) - used):
        if stale[0] in scripts:
            print("stale entry in docs/testing.md (no such flip now):", *stale)
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
