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


# The one exemption from DESIGN.md's "every key a script touches is passed in KEYS":
# scan_batch, called on a cluster node with a SCAN page's keys in ARGV, because Redis 7.0
# refuses declared keys of several slots in one call and the KEYS form costs about one
# call per key there (docs/architecture.md "Decisions", docs/scan.md "Cluster"). The
# value is the one variable that may carry such a key: no other script, and no other
# expression in scan_batch, passes the rule below.
ARGV_KEYS_EXEMPTION = {"scan_batch": "key"}


def undeclared_keys(name: str, source: str) -> list[str]:
    """Calls whose key argument is not ``KEYS[n]`` (nor the exempt script's variable)."""
    allowed = ARGV_KEYS_EXEMPTION.get(name)
    found = []
    for command, first, second in _CALL.findall(source):
        first_arg = (second if command.upper() in _SUBCOMMAND else first).strip()
        if command.upper() in _KEYLESS or not first_arg:
            continue
        if not first_arg.startswith("KEYS[") and first_arg != allowed:
            found.append(f"{command} {first_arg}")
    return found


@pytest.mark.parametrize("name", scripts.available())
def test_every_redis_call_names_a_declared_key(name):
    """No script builds a key name itself: the key argument is always KEYS[n]."""
    assert undeclared_keys(name, scripts.load(name).script.decode()) == []


def test_the_rule_fails_for_undeclared_keys_outside_the_exemption():
    via_function = "local function f(key) return redis.call('GET', key) end"
    assert undeclared_keys("some_script", via_function) == ["GET key"]
    assert undeclared_keys("some_script", "redis.call('GET', ARGV[1])") == ["GET ARGV[1]"]
    assert undeclared_keys("scan_batch", "redis.call('TYPE', ARGV[2])") == ["TYPE ARGV[2]"]
    assert undeclared_keys("scan_batch", "redis.call('TYPE', 'k' .. i)") == ["TYPE 'k' .. i"]


@pytest.mark.parametrize("name", sorted(ARGV_KEYS_EXEMPTION))
def test_the_argv_exemption_stays_narrow(name):
    """The exempt script cannot write (the server refuses it), says why it is exempt,
    and its key variable only ever holds KEYS[i] or ARGV[i] of the call."""
    source = scripts.load(name).script.decode()
    flags = source.splitlines()[0]
    assert flags.startswith("#!lua flags=") and "no-writes" in flags.split("=", 1)[1].split(",")
    header = [line for line in source.splitlines() if line.startswith("--")]
    assert any("DESIGN.md" in line for line in header), f"{name}: header must say why"
    variable = ARGV_KEYS_EXEMPTION[name]
    binders = re.findall(rf"local function (\w+)\(\s*{variable}\s*\)", source)
    assert len(binders) == 1, f"{name}: {variable} must be one function's only parameter"
    assert not re.search(rf"\b{variable}\s*=[^=]", source), f"{name}: {variable} reassigned"
    arguments = set(re.findall(rf"\b{binders[0]}\(([^)]*)\)", source)) - {variable}
    assert arguments == {"KEYS[i]", "ARGV[i]"}, arguments


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
