"""The server-level audit rules (dashboard/inspect/audit/serverrules.py) on server facts
written here: INFO fields, commandstats rows, SLOWLOG entries, the default user, for one
node or two (a cluster, where subjects name the node). Each finding compared whole;
each rule at its thresholds; refused sources become skips or noted limitations."""

import pytest

from dashboard.inspect.audit import serverrules as sr
from dashboard.inspect.audit.facts import Facts, NodeFact
from dashboard.inspect.audit.findings import Finding, Skip
from dashboard.inspect.audit.thresholds import config_from_mapping


def _ctx(sources, rules=None, **kw):
    facts = Facts(cluster=False, sources=sources)
    return sr.Context(config_from_mapping({"rules": rules or {}}), facts, **kw)


def _node(data, address=None):
    return NodeFact(address, True, data)


def _refused(reason, address=None):
    return NodeFact(address, False, None, reason)


def test_no_maxmemory_names_each_node_without_a_limit():
    memory = {
        "maxmemory": "0",
        "used_memory": 1024,
        "used_memory_human": "1K",
        "total_system_memory": 8 << 30,
        "maxmemory_policy": "noeviction",
    }
    ctx = _ctx({"info-memory": [_node(memory, "h:1"), _node({"maxmemory": "100"}, "h:2")]})
    assert sr.no_maxmemory(ctx) == [
        Finding(
            "no-maxmemory",
            "maxmemory @ h:1",
            "maxmemory is 0: Redis grows until the machine runs out of memory",
            {
                "maxmemory": 0,
                "used_memory": 1024,
                "used_memory_human": "1K",
                "total_system_memory": 8 << 30,
                "maxmemory_policy": "noeviction",
            },
            subject_kind="config",
        )
    ]


def test_a_source_refused_everywhere_is_a_skip_and_somewhere_a_limitation():
    with pytest.raises(Skip, match=r"^h:1: NOPERM no INFO$"):
        sr.no_maxmemory(_ctx({"info-memory": [_refused("NOPERM no INFO", "h:1")]}))
    with pytest.raises(Skip, match=r"^info-memory was not gathered$"):
        sr.no_maxmemory(_ctx({}))
    ctx = _ctx({"info-memory": [_refused("NOPERM", "h:1"), _node({"maxmemory": "0"}, "h:2")]})
    assert [f.subject for f in sr.no_maxmemory(ctx)] == ["maxmemory @ h:2"]
    assert ctx.limitations == {"no-maxmemory": ["h:1: NOPERM"]}


def test_connection_pressure_by_share_or_rejections():
    rules = {"connection-pressure": {"max_share": 0.8, "max_rejected": 5}}
    busy = {
        "connected_clients": 80,
        "maxclients": 100,
        "rejected_connections": 6,
        "blocked_clients": 2,
    }
    [found] = sr.connection_pressure(_ctx({"info-clients": [_node(busy)]}, rules))
    assert found == Finding(
        "connection-pressure",
        "clients",
        "80 of 100 client slots in use (80%); 6 connections rejected since the stats were reset",
        {
            "connected_clients": 80,
            "maxclients": 100,
            "share": 0.8,
            "rejected_connections": 6,
            "blocked_clients": 2,
        },
        subject_kind="server",
    )
    calm = {"connected_clients": 79, "maxclients": 100, "rejected_connections": 5}
    assert sr.connection_pressure(_ctx({"info-clients": [_node(calm)]}, rules)) == []
    no_limit = {"connected_clients": 79, "maxclients": 0, "rejected_connections": 9}
    [found] = sr.connection_pressure(_ctx({"info-clients": [_node(no_limit)]}, rules))
    assert found.message == "9 connections rejected since the stats were reset"
    assert found.evidence["share"] is None
    # a field that is not a number reads as 0, never as a rejection or a client
    garbled = {"connected_clients": 1, "maxclients": 1000, "rejected_connections": "n/a"}
    rules["connection-pressure"]["max_rejected"] = 0
    assert sr.connection_pressure(_ctx({"info-clients": [_node(garbled)]}, rules)) == []


def test_logical_databases_beyond_the_allowed_number():
    keyspace = {"db0": {"keys": 5}, "db3": {"keys": 1}, "db4": {"keys": 0}, "other": 1}
    ctx = _ctx(
        {"info-keyspace": [_node(keyspace)]}, {"logical-databases": {"max_dbs": 1}}, scanned_db=0
    )
    assert sr.logical_databases(ctx) == [
        Finding(
            "logical-databases",
            "databases",
            "2 logical databases hold keys (db0, db3); this audit scanned db 0",
            {"databases": {"db0": 5, "db3": 1}, "scanned_db": 0},
            subject_kind="server",
        )
    ]
    ctx = _ctx({"info-keyspace": [_node(keyspace)]}, {"logical-databases": {"max_dbs": 2}})
    assert sr.logical_databases(ctx) == []
    ctx = _ctx({"info-keyspace": [_node(keyspace, "h:1")]}, {"logical-databases": {"max_dbs": 1}})
    assert [f.subject for f in sr.logical_databases(ctx)] == ["databases @ h:1"]


def _stats(*rows, address=None):
    return _node([{"command": c, "calls": n} for c, n in rows], address)


def _slow(*entries, address=None):
    return _node(list(entries), address)


def _entry(command, duration_us, client_name="app", start=1000):
    return {
        "command": command,
        "duration_us": duration_us,
        "start_time": start,
        "client_address": "10.0.0.1:5000",
        "client_name": client_name,
    }


def test_keys_command_from_commandstats_and_the_slowlog():
    sources = {
        "commandstats": [
            _stats(("keys", 3), ("get", 9), address="h:1"),
            _stats(("keys", 2), address="h:2"),
        ],
        "slowlog": [
            _slow(
                _entry("KEYS user:*", 900),
                _entry("keys *", 300),
                _entry("KEYS own", 5000, client_name="redis-dashboard"),
                _entry("GET x", 99999),
            )
        ],
    }
    [found] = sr.keys_command(_ctx(sources))
    assert found == Finding(
        "keys-command",
        "KEYS",
        "KEYS was called 5 times since the stats were reset; 2 KEYS calls are in the SLOWLOG",
        {
            "calls": 5,
            "slowlog_entries": 2,
            "slowest_us": 900,
            "examples": [
                {"command": "KEYS user:*", "client": "10.0.0.1:5000"},
                {"command": "keys *", "client": "10.0.0.1:5000"},
            ],
        },
        subject_kind="command",
        weight=5,
    )


def test_keys_command_with_one_source_refused_notes_it():
    ctx = _ctx({"commandstats": [_refused("NOPERM info")], "slowlog": [_slow(_entry("KEYS a", 5))]})
    [found] = sr.keys_command(ctx)
    assert found.message == "1 KEYS calls are in the SLOWLOG" and found.evidence["calls"] == 0
    assert ctx.limitations["keys-command"] == ["NOPERM info"]
    with pytest.raises(Skip, match="NOPERM info; NOPERM slowlog"):
        sr.keys_command(
            _ctx(
                {"commandstats": [_refused("NOPERM info")], "slowlog": [_refused("NOPERM slowlog")]}
            )
        )
    quiet = _ctx(
        {"commandstats": [_stats(("keys", 1))], "slowlog": [_slow()]},
        {"keys-command": {"min_calls": 2}},
    )
    assert sr.keys_command(quiet) == []


def test_flush_commands_per_command_with_their_nodes():
    sources = {
        "commandstats": [
            _stats(("flushdb", 2), ("flushall", 1), address="h:1"),
            _stats(("flushdb", 1), address="h:2"),
        ]
    }
    assert sr.flush_command(_ctx(sources, {"flush-command": {"min_calls": 2}})) == [
        Finding(
            "flush-command",
            "FLUSHDB",
            "FLUSHDB was called 3 times since the stats were reset",
            {"calls": 3, "nodes": ["h:1", "h:2"]},
            subject_kind="command",
            weight=3,
        )
    ]
    standalone = _ctx({"commandstats": [_stats(("flushall", 1))]})
    assert sr.flush_command(standalone)[0].evidence == {"calls": 1}  # no node names


def test_slow_commands_grouped_by_command_slowest_first():
    sources = {
        "slowlog": [
            _slow(
                _entry("HGETALL big", 20_000, start=1),
                _entry("hgetall b", 50_000, start=2),
                _entry("SORT x", 5_000),
                _entry("KEYS *", 90_000),
                _entry("GET y", 9_999),
            )
        ]
    }
    rules = {"slow-commands": {"min_duration_us": 10_000, "min_entries": 1}}
    assert sr.slow_commands(_ctx(sources, rules)) == [
        Finding(
            "slow-commands",
            "HGETALL",
            "2 HGETALL calls in the SLOWLOG, slowest 50.0 ms",
            {
                "entries": 2,
                "slowest_us": 50_000,
                "total_us": 70_000,
                "examples": [
                    {
                        "command": "hgetall b",
                        "duration_us": 50_000,
                        "start_time": 2,
                        "client": "10.0.0.1:5000",
                    },
                    {
                        "command": "HGETALL big",
                        "duration_us": 20_000,
                        "start_time": 1,
                        "client": "10.0.0.1:5000",
                    },
                ],
            },
            subject_kind="command",
            weight=50_000,
        )
    ]
    rules["slow-commands"]["min_entries"] = 3
    assert sr.slow_commands(_ctx(sources, rules)) == []


def test_dynamic_lua_counts_cached_scripts():
    memory = {"number_of_cached_scripts": "51", "used_memory_scripts_eval": 4096}
    rules = {"dynamic-lua": {"max_scripts": 50}}
    assert sr.dynamic_lua(_ctx({"info-memory": [_node(memory)]}, rules)) == [
        Finding(
            "dynamic-lua",
            "script cache",
            "51 Lua scripts are cached: scripts are built with values inside",
            {"number_of_cached_scripts": 51, "used_memory_scripts_eval": 4096},
            subject_kind="server",
        )
    ]
    rules["dynamic-lua"]["max_scripts"] = 51
    assert sr.dynamic_lua(_ctx({"info-memory": [_node(memory)]}, rules)) == []
    with pytest.raises(Skip, match="number_of_cached_scripts"):
        sr.dynamic_lua(_ctx({"info-memory": [_node({"maxmemory": 0})]}))


def test_default_user_without_password_with_its_network_exposure():
    acl = {"open_to_anyone": True, "enabled": True, "nopass": True}
    network = {"bind": "* -::*", "protected-mode": "no"}
    ctx = _ctx(
        {
            "acl": [_node(acl, "h:1"), _node({"open_to_anyone": False}, "h:2")],
            "network": [_node(network, "h:1")],
        }
    )
    assert sr.default_user_nopass(ctx) == [
        Finding(
            "default-user-nopass",
            "default user @ h:1",
            "the default user is enabled and needs no password",
            {"enabled": True, "nopass": True, "bind": "* -::*", "protected_mode": "no"},
            subject_kind="acl-user",
        )
    ]


class _Shape:
    """What eviction-policy-mismatch reads of the keyspace scan (keyshape.Shape)."""

    def __init__(self, keys, with_ttl=0, cache_named=0, must_keep=None):
        self.keys, self.with_ttl, self.cache_named = keys, with_ttl, cache_named
        self.must_keep = must_keep or {}

    def public(self):
        return {"keys": self.keys}


def _mismatch(policy, shape, rules=None):
    memory = {"maxmemory": "1000", "maxmemory_policy": policy}
    return sr.eviction_policy_mismatch(_ctx({"info-memory": [_node(memory)]}, rules, shape=shape))


def test_noeviction_on_a_cache_at_the_share_and_size_edges():
    rules = {"eviction-policy-mismatch": {"cache_share": 0.5, "min_keys": 100}}
    [found] = _mismatch("noeviction", _Shape(100, with_ttl=50), rules)  # both edges met
    assert found == Finding(
        "eviction-policy-mismatch",
        "maxmemory-policy",
        "noeviction on a cache-shaped keyspace (50% of keys have a TTL): "
        "at maxmemory every write fails instead of evicting",
        {
            "policy": "noeviction",
            "maxmemory": 1000,
            "reason": "noeviction-cache",
            "keyspace": {"keys": 100},
        },
        subject_kind="config",
    )
    assert _mismatch("noeviction", _Shape(100, with_ttl=49), rules) == []
    assert _mismatch("noeviction", _Shape(99, with_ttl=99), rules) == []
    # cache-named namespaces count as cache-shaped too, by their share of the keys
    [found] = _mismatch("noeviction", _Shape(200, with_ttl=2, cache_named=100), rules)
    assert found.message.startswith("noeviction on a cache-shaped keyspace (1% of keys")
    assert _mismatch("noeviction", _Shape(200, with_ttl=2, cache_named=99), rules) == []


def test_allkeys_on_data_that_must_stay_lists_what_and_how_many():
    shape = _Shape(5000, with_ttl=10, must_keep={"streams": [2, [b"s"]], "locks": [1500, []]})
    [found] = _mismatch("allkeys-lru", shape)
    assert found.message == (
        "allkeys-lru may evict data that must stay (1,500 locks, 2 streams): this "
        "instance is used for cache and data at once"
    )
    assert found.evidence["reason"] == "allkeys-evicts-data"
    assert _mismatch("allkeys-lru", _Shape(5000, with_ttl=10)) == []


def test_a_volatile_policy_with_no_key_holding_a_ttl():
    rules = {"eviction-policy-mismatch": {"min_keys": 100}}
    [found] = _mismatch("volatile-lfu", _Shape(100), rules)
    assert found.message == (
        "volatile-lfu evicts only keys with a TTL and none of 100 keys has one: "
        "at maxmemory writes fail as with noeviction"
    )
    assert found.evidence["reason"] == "volatile-without-ttl"
    assert _mismatch("volatile-lfu", _Shape(99), rules) == []
    assert _mismatch("volatile-lfu", _Shape(100, with_ttl=1), rules) == []


def test_a_slowlog_entry_without_a_command_is_grouped_as_unknown():
    sources = {"slowlog": [_slow(_entry("", 20_000))]}
    rules = {"slow-commands": {"min_duration_us": 10_000, "min_entries": 1}}
    [found] = sr.slow_commands(_ctx(sources, rules))
    assert found.subject == "?" and found.message == "1 ? calls in the SLOWLOG, slowest 20.0 ms"


@pytest.mark.parametrize(
    ("rule", "check", "source", "data"),
    [
        ("connection-pressure", sr.connection_pressure, "info-clients", {"maxclients": 10}),
        ("default-user-nopass", sr.default_user_nopass, "acl", {}),
        ("dynamic-lua", sr.dynamic_lua, "info-memory", {"number_of_cached_scripts": 0}),
        ("logical-databases", sr.logical_databases, "info-keyspace", {}),
        ("flush-command", sr.flush_command, "commandstats", []),
        ("keys-command", sr.keys_command, "commandstats", []),
        ("keys-command", sr.keys_command, "slowlog", []),
        ("slow-commands", sr.slow_commands, "slowlog", []),
        ("eviction-policy-mismatch", sr.eviction_policy_mismatch, "info-memory", {}),
    ],
)
def test_a_node_that_refused_is_noted_under_the_rule_that_needed_it(rule, check, source, data):
    sources = {"commandstats": [_node([], "h:2")], "slowlog": [_slow(address="h:2")]}
    sources[source] = [_refused("NOPERM", "h:1"), _node(data, "h:2")]
    ctx = _ctx(sources, shape=_Shape(1))
    check(ctx)
    assert ctx.limitations[rule] == ["h:1: NOPERM"]
    assert set(ctx.limitations) == {rule}


def test_connection_pressure_at_each_edge_and_per_node():
    rules = {"connection-pressure": {"max_share": 0.75, "max_rejected": 5}}

    def pressure(data, address="h:1"):
        return sr.connection_pressure(_ctx({"info-clients": [_node(data, address)]}, rules))

    [found] = pressure({"connected_clients": 3, "maxclients": 4, "rejected_connections": 5})
    assert found.subject == "clients @ h:1"
    assert found.message == "3 of 4 client slots in use (75%)"  # 5 rejected: not over
    [found] = pressure({"connected_clients": 1, "maxclients": 3, "rejected_connections": 6})
    assert found.message == "6 connections rejected since the stats were reset"
    assert found.evidence["share"] == 0.3333
    assert pressure({"connected_clients": 9, "maxclients": 0, "rejected_connections": 0}) == []


def test_dynamic_lua_without_the_script_count_is_a_skip_and_names_the_node():
    with pytest.raises(Skip) as skipped:
        sr.dynamic_lua(_ctx({"info-memory": [_node({"used_memory": 1})]}))
    assert str(skipped.value) == (
        "INFO memory has no number_of_cached_scripts (INFO refused or Redis < 7)"
    )
    memory = {"number_of_cached_scripts": "51", "used_memory_scripts_eval": 1}
    rules = {"dynamic-lua": {"max_scripts": 50}}
    [found] = sr.dynamic_lua(_ctx({"info-memory": [_node(memory, "h:9")]}, rules))
    assert found.subject == "script cache @ h:9"


def test_keys_command_from_commandstats_when_the_slowlog_is_refused():
    sources = {
        "commandstats": [_node([{"command": "keys", "calls": 3}])],
        "slowlog": [_refused("NOPERM slowlog")],
    }
    [found] = sr.keys_command(_ctx(sources))
    assert found.evidence["calls"] == 3


def test_slow_commands_at_the_floor_and_long_commands():
    rules = {"slow-commands": {"min_duration_us": 10_000, "min_entries": 2}}
    long = "SORT " + "k" * 300
    sources = {
        "slowlog": [
            _slow(
                _entry("EVAL a", 10_000),  # at the floor: counted
                _entry("EVAL b", 9_999),
                _entry("EVAL c", 10_000),
                _entry("GET y", 20_000),  # one GET: under min_entries
                *(_entry(long, 100_000 + n, start=n) for n in range(4)),
            )
        ]
    }
    evals, sorts = sr.slow_commands(_ctx(sources, rules))
    assert (evals.subject, evals.evidence["entries"]) == ("EVAL", 2)
    assert sorts.message == "4 SORT calls in the SLOWLOG, slowest 100.0 ms"
    examples = sorts.evidence["examples"]
    assert examples[0]["command"] == long[:200]  # a long command is cut at 200 characters
    assert [e["duration_us"] for e in examples] == [100_003, 100_002, 100_001]


def test_slow_entries_without_a_duration_count_no_time():
    def slow(floor, *durations):
        rules = {"slow-commands": {"min_duration_us": floor, "min_entries": 1}}
        sources = {"slowlog": [_slow(*(_entry("GET x", d) for d in durations))]}
        return [f.evidence for f in sr.slow_commands(_ctx(sources, rules))]

    [only] = slow(0, None)
    assert (only["slowest_us"], only["total_us"]) == (0, 0)
    [both] = slow(0, None, 1)
    assert (both["slowest_us"], both["total_us"], both["entries"]) == (1, 1, 2)
    [timed] = slow(1, None, 5)  # unknown is not over a floor of 1 us
    assert timed["entries"] == 1
    sources = {"slowlog": [_slow(*(_entry("KEYS *", None) for _ in range(4)))]}
    [found] = sr.keys_command(_ctx(sources))
    assert found.evidence["slowest_us"] == 0 and len(found.evidence["examples"]) == 3


def test_eviction_policy_mismatch_skips_without_a_scan_and_judges_each_limited_node():
    memory = [_node({"maxmemory": "1000", "maxmemory_policy": "noeviction"}, "h:1")]
    with pytest.raises(Skip, match=r"^the keyspace scan did not run$"):
        sr.eviction_policy_mismatch(_ctx({"info-memory": memory}))
    with pytest.raises(Skip, match=r"^scan refused: NOPERM$"):
        sr.eviction_policy_mismatch(
            _ctx({"info-memory": memory}, scan_error="scan refused: NOPERM")
        )
    nodes = [
        _node({"maxmemory": "0", "maxmemory_policy": "noeviction"}, "h:1"),  # no limit
        _node({"maxmemory": "1000", "maxmemory_policy": "noeviction"}, "h:2"),
    ]
    found = sr.eviction_policy_mismatch(_ctx({"info-memory": nodes}, shape=_Shape(100, 100)))
    assert [f.subject for f in found] == ["maxmemory-policy @ h:2"]
