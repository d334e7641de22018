import re

import pytest
import redis

from dashboard.patterns import scripts

# Commands whose first argument is not a key.
_KEYLESS = {"TIME", "PING"}
# Commands whose key follows a subcommand (MEMORY USAGE key, OBJECT ENCODING key).
_SUBCOMMAND = {"MEMORY", "OBJECT", "XINFO"}
_CALL = re.compile(r"redis\.p?call\(\s*'([A-Za-z]+)'\s*(?:,\s*([^,)]+))?(?:,\s*([^,)]+))?")


@pytest.mark.parametrize("name", scripts.available())
def test_every_script_has_a_contract_header(name):
    script = scripts.load(name)
    assert script.returns
    source = script.script.decode()
    # Every key used in the body is declared, and every declared key is used.
    body = "\n".join(line for line in source.splitlines() if not line.startswith("--"))
    if script.keys_declared_variadic:
        assert "KEYS[i]" in body or "KEYS[n]" in body, (
            f"{name}: variadic script must loop over KEYS"
        )
        return
    used = {int(n) for n in re.findall(r"KEYS\[(\d+)\]", body)}
    assert used == set(range(1, len(script.keys) + 1)), f"{name}: KEYS used {used}"


@pytest.mark.parametrize("name", scripts.available())
def test_every_redis_call_names_a_declared_key(name):
    """No script builds a key name itself: the key argument is always KEYS[n]."""
    body = scripts.load(name).script.decode()
    for command, first, second in _CALL.findall(body):
        first_arg = second if command.upper() in _SUBCOMMAND else first
        if command.upper() in _KEYLESS or not first_arg:
            continue
        assert first_arg.strip().startswith("KEYS["), f"{name}: {command} {first_arg}"


def test_header_parser_refuses_missing_returns():
    with pytest.raises(scripts.ScriptContractError, match="returns"):
        scripts.parse_header("x", "-- KEYS[1] k\nreturn 1\n")
    with pytest.raises(scripts.ScriptContractError, match="numbered"):
        scripts.parse_header("x", "-- KEYS[2] k\n-- returns 1\nreturn 1\n")


def test_wrong_number_of_keys_is_refused_before_redis(fake):
    cad = scripts.load("compare_and_delete")
    with pytest.raises(scripts.ScriptContractError, match="1 key"):
        cad(fake, keys=["a", "b"], args=["t"])


def test_load_is_cached():
    assert scripts.load("compare_and_delete") is scripts.load("compare_and_delete")


def test_evalsha_with_noscript_fallback(r):
    cad = scripts.load("compare_and_delete")
    r.set("k", "tok")
    r.script_flush()
    assert cad(r, keys=["k"], args=["other"]) == 0
    assert r.script_exists(cad.sha) == [True]  # EVAL cached it again
    r.script_flush()
    assert cad(r, keys=["k"], args=["tok"]) == 1
    assert r.exists("k") == 0


def test_script_inside_pipeline_after_flush(r):
    cad = scripts.load("compare_and_delete")
    r.set("a", "1")
    r.set("b", "2")
    r.script_flush()
    with r.pipeline() as pipe:
        cad(pipe, keys=["a"], args=["1"])
        cad(pipe, keys=["b"], args=["nope"])
        pipe.get("b")
        assert pipe.execute() == [1, 0, b"2"]


def test_script_errors_name_the_script_file(r):
    with pytest.raises(FileNotFoundError, match="no_such"):
        scripts.load("no_such")
    r.set("k", "v")
    cad = scripts.load("compare_and_delete")
    r.delete("k")
    r.hset("k", "f", "v")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        cad(r, keys=["k"], args=["v"])
