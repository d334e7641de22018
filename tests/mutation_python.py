"""Mutation testing of the Python modules where a silent break hurts most (mutmut).

Run through ``tests/mutation python [GROUP ...]`` (docs/testing.md). mutmut makes every
mutant of the files in ``[tool.mutmut] only_mutate`` (pyproject.toml), runs the test
selection there once to learn which tests reach which function, then runs each mutant
against only those tests (stopping at the first failure). The groups below pick the
functions that count: whole modules, plus ``mask_url`` of connection.py and the
bookkeeping functions of scan.py (the rest of those files is I/O plumbing whose breaks
the integration tests show as errors, not as wrong numbers).

Results stay in ``mutants/`` (git-ignored): a second run only tries mutants without a
result, so a campaign can be stopped and resumed. ``report`` prints the killed share
per group and every survivor that docs/testing.md does not list as equivalent.
"""

from __future__ import annotations

import fnmatch
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "mutants"
DOC = ROOT / "docs" / "testing.md"

SCAN = "dashboard.inspect.keyspace.scan."
GROUPS: dict[str, list[str]] = {
    "gate": ["dashboard.gate.*"],
    "security": ["dashboard.web.security.*"],
    "mask_url": ["dashboard.connection.x_mask_url__mutmut_*"],
    "scan": [
        "dashboard.inspect.keyspace.scanjob.*",
        "dashboard.inspect.keyspace.passes.*",
        "dashboard.inspect.keyspace.rollup.*",
        *(
            f"dashboard.inspect.keyspace.scriptpage.{name}__mutmut_*"
            for name in ("x_unpack", "x_ok", "x_group")  # the script page's bookkeeping
        ),
        *(
            f"{SCAN}{name}__mutmut_*"
            for name in (
                "x__key_list",
                "x__type_name",
                "x__facts_of",
                "x__within_budget",
                "x__span",
                "xǁNodeScannerǁnext_batch",
                "xǁNodeScannerǁfacts",
                "xǁNodeScannerǁ_assigned",
                "xǁNodeScannerǁ_adapt",
            )
        ),
    ],
    "audit": [
        "dashboard.inspect.audit.keyrules.*",
        "dashboard.inspect.audit.serverrules.*",
        "dashboard.inspect.audit.streamrules.*",
    ],
    "live": [
        "dashboard.inspect.live.state.*",
        "dashboard.inspect.live.foreign.*",
        "dashboard.inspect.live.ownership.*",
    ],
}
# ``--focus``: each group's mutants run against only the tests written for its modules
# (when those reach the mutant's function; otherwise against all that do). A survivor
# of the focused run is no verdict: ``--again`` without ``--focus`` reruns it against
# every test that reaches it. Survivors are what make a campaign slow (a killed mutant
# stops at its first failing test, a survivor runs them all).
FOCUS: dict[str, list[str]] = {
    "gate": [
        "tests/test_gate.py",
        "tests/test_mutation_kills.py",
        "tests/test_robust_deadline.py",
        "tests/test_cluster_topology.py",
        "tests/test_cluster_paths.py",
    ],
    "audit": [
        "tests/test_audit_observers.py",
        "tests/test_audit_server_rules.py",
        "tests/test_audit_stream_rules.py",
        "tests/test_audit_rules.py",
        "tests/test_audit_cli.py",
        "tests/test_audit_config.py",
        "tests/test_robust_streams.py",
        "tests/test_mutation_kills.py",
    ],
    "scan": [
        "tests/test_scan.py",
        "tests/test_scan_properties.py",
        "tests/test_scan_bookkeeping.py",
        "tests/test_scanjob_steps.py",
        "tests/test_scanjob.py",
        "tests/test_rollup_json.py",
        "tests/test_cluster_moved.py",
        "tests/test_cluster_scan_from.py",
        "tests/test_cli_keyspace.py",
        "tests/test_layouts.py",  # the owner of each namespace
        "tests/test_mutation_kills.py",
        "tests/test_scanjob_outcomes.py",
        "tests/test_scanjob_runs.py",
        "tests/test_rollup_edges.py",
        "tests/test_scan_edges.py",
    ],
}
KILLED = {1, 3}  # a test failed (3: pytest's internal error, a crash in the mutant)
TIMEOUT = {24, -24, 36, 152, 255}  # counted as killed: the mutant hangs what it serves
SURVIVED = {0}


def _results() -> dict[str, int | None]:
    """Every mutant's exit code (None: not tried yet), from mutmut's .meta files."""
    out: dict[str, int | None] = {}
    for meta in MUTANTS.glob("dashboard/**/*.meta"):
        out.update(json.loads(meta.read_text())["exit_code_by_key"])
    return out


def _in_group(name: str, group: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in GROUPS[group])


def equivalents() -> dict[str, str]:
    """Mutants docs/testing.md lists as equivalent: ``| `name` | why |`` rows."""
    if not DOC.exists():
        return {}
    rows = re.findall(r"^\| `(dashboard\.[^`]+__mutmut_\d+)` \| (.+?) \|$", DOC.read_text(), re.M)
    return dict(rows)


def run(
    groups: list[str],
    max_children: int,
    again: bool = False,
    focus: bool = False,
    only: str = "*",
) -> int:
    """Run the mutants of ``groups`` that have no result yet (all when none exist);
    ``again``: also those that survived (after tests were added); ``focus``: against
    the groups' own tests only (:data:`FOCUS`); ``only``: mutant names matching one of these
    comma-separated globs (two campaigns in two copies of the tree can split a group)."""
    import os

    os.chdir(ROOT)
    from mutmut.__main__ import _run  # imported here: it reads pyproject.toml on import

    _fast_tests_first(focus)
    _keep_results_when_tests_are_added()
    results = _results()
    if results:
        wanted = {None, 33, *SURVIVED} if again else {None}
        listed = equivalents()  # a survivor listed as equivalent is not run again
        names = [
            n
            for n, code in results.items()
            if code in wanted
            and _group_of(n) in groups
            and (code is None or n not in listed)
            and any(fnmatch.fnmatchcase(n, glob) for glob in only.split(","))
        ]
        if not names:
            print("every mutant of these groups has a result: see `tests/mutation report`")
            return 0
    else:  # the first run makes the mutants; then only our groups' names are run
        names = [pattern for g in groups for pattern in GROUPS[g]]
    print(f"mutmut: {len(names)} mutant name(s) or pattern(s) to run")
    try:
        _run(names, max_children)
    except SystemExit as exc:  # mutmut ends with exit() on a failed clean run
        return int(exc.code or 0)
    return 0


def _fast_tests_first(focus: bool = False) -> None:
    """Run each mutant's tests fastest first: most mutants die on a quick unit test, and
    mutmut stops at the first failure (it hands pytest the tests in the order kept).
    ``focus``: keep only the tests of the function's group's :data:`FOCUS` files, when
    any of them reaches the function."""
    import mutmut.__main__ as mm

    collect = mm.collect_or_load_stats

    def ordered(*args: object, **kwargs: object) -> None:
        collect(*args, **kwargs)
        state = mm.state()
        took = state.duration_by_test
        for name, tests in list(state.tests_by_mangled_function_name.items()):
            files = FOCUS.get(_group_of(f"{name}__mutmut_1") or "", []) if focus else []
            tests = [t for t in tests if t.split("::")[0] in files] or tests
            state.tests_by_mangled_function_name[name] = sorted(
                tests, key=lambda test: (took.get(test, 0.0), test)
            )

    mm.collect_or_load_stats = ordered


def _keep_results_when_tests_are_added() -> None:
    """mutmut forgets every result when the test selection changes. Here it only ever
    grows (a new test file for a survivor): kills stay kills, new tests are found as
    new tests, and survivors are run again on request (``--again``)."""
    from mutmut import configuration

    fingerprint = configuration.Config.config_fingerprint

    def without_selection(self: configuration.Config) -> dict[str, str]:
        return {k: v for k, v in fingerprint(self).items() if k != "test_selection"}

    configuration.Config.config_fingerprint = without_selection


def _group_of(name: str) -> str | None:
    return next((g for g in GROUPS if _in_group(name, g)), None)


def report(show: int = 1000) -> int:
    """Per group: mutants, killed (incl. timeouts), equivalent, survived, untried."""
    results = _results()
    if not results:
        print("no results yet: run `tests/mutation python` first")
        return 1
    equivalent = equivalents()
    total = {"mutants": 0, "killed": 0, "equivalent": 0, "survived": 0, "other": 0}
    survivors: list[str] = []
    print(
        f"{'group':<10} {'mutants':>8} {'killed':>7} {'equiv':>6} {'survived':>9} "
        f"{'untried':>8} {'killed %':>9}"
    )
    for group in GROUPS:
        names = [n for n in results if _in_group(n, group)]
        counts = {"mutants": len(names), "killed": 0, "equivalent": 0, "survived": 0, "other": 0}
        for name in names:
            code = results[name]
            if code in KILLED or code in TIMEOUT:
                counts["killed"] += 1
            elif name in equivalent:
                counts["equivalent"] += 1
            elif code in SURVIVED or code == 33:  # 33: no test reaches it at all
                counts["survived"] += 1
                survivors.append(name)
            else:
                counts["other"] += 1
        for key in total:
            total[key] += counts[key]
        _row(group, counts)
    _row("all", total)
    for name in sorted(survivors)[:show]:
        print("survived:", name)
    return 0


def _row(group: str, c: dict[str, int]) -> None:
    judged = c["killed"] + c["survived"]
    share = 100 * c["killed"] / judged if judged else 0.0
    print(
        f"{group:<10} {c['mutants']:>8} {c['killed']:>7} {c['equivalent']:>6} "
        f"{c['survived']:>9} {c['other']:>8} {share:>8.1f}%"
    )


def main(argv: list[str]) -> int:
    if argv[:1] == ["report"]:
        return report()
    children, again, focus, only = 1, False, False, "*"
    while argv[:1] and argv[0].startswith("--"):
        option = argv.pop(0)
        if option.startswith("--max-children="):
            children = int(option.split("=", 1)[1])
        elif option == "--again":
            again = True
        elif option == "--focus":
            focus = True
        elif option.startswith("--only="):
            only = option.split("=", 1)[1]
        else:
            print(f"unknown option {option}", file=sys.stderr)
            return 2
    groups = argv or list(GROUPS)
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        print(f"unknown group(s) {unknown}; groups: {', '.join(GROUPS)}", file=sys.stderr)
        return 2
    return run(groups, children, again, focus, only)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
