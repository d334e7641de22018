"""The mutation tools themselves (tests/mutation): cheap checks that keep them honest
while the code they mutate changes. The campaigns are not run here (docs/testing.md)."""

import ast
import importlib
import tomllib
from pathlib import Path

import mutation_lua
import mutation_python
import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_every_lua_script_has_tests_mapped_and_they_exist():
    scripts = {p.stem for p in (ROOT / "lua").glob("*.lua")}
    assert scripts <= set(mutation_lua.SCRIPT_TESTS), "map new lua/*.lua in SCRIPT_TESTS"
    for script, tests in mutation_lua.SCRIPT_TESTS.items():
        assert tests, script
        for test in tests:
            assert (ROOT / test).is_file(), (script, test)


def test_lua_flips_leave_comments_and_strings_alone():
    source = (
        "-- a == b and 1 < 2\n"
        "--[[ true or false\n 0 + 1 ]]\n"
        "local s = 'x == y' .. \"a < b\" .. [[ c + d ]]\n"
        "if a == 1 and not b then return -1 end\n"
        "local n = x - 1 <= y\n"
    )
    shown = [str(f).split(": ", 1)[1] for f in mutation_lua.flips("t", source)]
    assert shown == [
        "== -> ~=",
        "1 -> 0",
        "and -> or",
        "not -> (removed)",
        "1 -> 0",  # the 1 of -1 (a unary minus is not flipped)
        "- -> +",
        "1 -> 0",
        "<= -> <",
    ]
    lines = [f.line for f in mutation_lua.flips("t", source)]
    assert set(lines) == {5, 6}


def test_a_flip_changes_exactly_its_token():
    source = "return a >= b\n"
    [flip] = mutation_lua.flips("t", source)
    assert flip.apply(source) == "return a > b\n"
    [removed] = mutation_lua.flips("t", "if not x then end")
    assert removed.apply("if not x then end") == "if x then end"


def test_every_lua_script_yields_flips():
    for path in (ROOT / "lua").glob("*.lua"):
        assert list(mutation_lua.flips(path.stem, path.read_text())), path.name


def _function_names(module: str) -> set[str]:
    """Mangled names as mutmut writes them: x_<function>, xǁClassǁ<method>."""
    tree = ast.parse(Path(importlib.import_module(module).__file__).read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            names.add(f"x_{node.name}")
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    names.add(f"xǁ{node.name}ǁ{item.name}")
    return names


@pytest.mark.parametrize("group", list(mutation_python.GROUPS))
def test_every_mutation_pattern_names_code_that_exists(group):
    """A renamed function must not drop out of the campaign unnoticed."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    files = {p.removesuffix(".py").replace("/", ".") for p in config["only_mutate"]}
    for pattern in mutation_python.GROUPS[group]:
        if pattern.endswith(".*"):
            module, function = pattern[:-2], ""
        else:
            module, _, function = pattern.split("__mutmut_")[0].rpartition(".")
        assert module in files, f"{pattern}: {module} is not in only_mutate"
        if function:
            assert function in _function_names(module), f"{pattern}: no such function"


def test_equivalent_mutants_listed_in_the_docs_exist_in_a_group():
    for name in mutation_python.equivalents():
        assert mutation_python._group_of(name), name


def test_the_start_of_string_sub_is_not_flipped_to_zero():
    """Lua takes a string.sub start of 0 as 1: that flip could never be killed."""
    shown = [str(f).split(": ", 1)[1] for f in mutation_lua.flips("t", "x = s:sub(1, 5)\n")]
    assert shown == []
    shown = [str(f).split(": ", 1)[1] for f in mutation_lua.flips("t", "x = string.sub(s, 1, 1)")]
    assert shown == ["1 -> 0"]  # the end index still is


def test_identical_flips_on_a_line_are_told_apart_by_their_rank():
    source = "x = a - b - c\n"
    keys = [key for key, _ in mutation_lua.keyed("t", source)]
    assert keys == [("t", "x = a - b - c", "- -> +", 1), ("t", "x = a - b - c", "- -> +", 2)]
