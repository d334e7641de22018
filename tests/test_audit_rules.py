"""Every audit rule against a planted dataset on a real, otherwise well-configured server.

Each test starts a private redis-server with maxmemory, a volatile-lru policy and a
password (so server rules stay quiet), plants one anti-pattern, and checks that its
rule fires with the right subject while no other rule reports a warning or worse.
"""

import redis
from audit_support import SEVERE, assert_fires_alone, by_rule, start
from redis.backoff import NoBackoff
from redis.retry import Retry

from dashboard.patterns import streams
from dashboard.patterns.cache import Cache
from dashboard.patterns.locks import Lock
from dashboard.patterns.ratelimit import RateLimiter
from dashboard.patterns.sessions import SessionStore


def test_missing_ttl_reports_a_namespace_that_mixes_ttl_and_no_ttl(private_server):
    p = start(private_server)
    c = p.client
    for i in range(20):
        c.set(f"cache:product:{i}", "v", ex=600)
    for i in range(3):
        c.set(f"cache:product:leak{i}", "v")
    [found] = assert_fires_alone(p.audit(), "missing-ttl", {"cache:product"})
    assert found["severity"] == "warning"
    ev = found["evidence"]
    assert (ev["keys"], ev["without_ttl"], ev["with_ttl"]) == (23, 3, 20)
    assert sorted(ev["examples"]) == [f"cache:product:leak{i}" for i in range(3)]


def test_missing_ttl_is_info_for_persistent_data_and_honours_exemptions(private_server):
    p = start(private_server)
    for i in range(5):
        p.client.hset(f"user:{i}", "name", "ada")
        p.client.set(f"config:flag{i}", "1")
    report = p.audit()
    found = {f["subject"]: f["severity"] for f in by_rule(report, "missing-ttl")}
    assert found == {"user": "info", "config": "info"}
    exempt = p.audit({"missing-ttl": {"exempt_namespaces": ["conf*"], "exempt_types": ["hash"]}})
    assert not by_rule(exempt, "missing-ttl")


def test_big_string(private_server):
    p = start(private_server)
    p.client.set("blob:report:1", "x" * 150_000, ex=600)
    p.client.set("blob:report:2", "small", ex=600)
    [found] = assert_fires_alone(p.audit(), "big-string", {"blob:report"})
    assert found["evidence"]["keys_over"] == 1
    assert found["evidence"]["top"] == [
        {
            "key": "blob:report:1",
            "length": 150_000,
            "memory": p.client.memory_usage("blob:report:1"),  # from Redis, not the report
        }
    ]


def test_big_collection(private_server):
    p = start(private_server)
    p.client.hset("catalog:items", mapping={f"f{i}": i for i in range(6000)})
    p.client.expire("catalog:items", 600)
    p.client.sadd("catalog:tags", "a", "b")
    p.client.expire("catalog:tags", 600)
    [found] = assert_fires_alone(p.audit(), "big-collection", {"catalog"})
    top = found["evidence"]["top"]
    assert [(t["key"], t["type"], t["elements"]) for t in top] == [("catalog:items", "hash", 6000)]


def test_keys_command(private_server):
    p = start(private_server)
    p.client.set("a:1", 1, ex=60)
    p.client.keys("a:*")
    [found] = assert_fires_alone(p.audit(), "keys-command", {"KEYS"})
    assert found["evidence"]["calls"] == 1


def test_flush_command(private_server):
    p = start(private_server)
    p.client.flushdb()
    [found] = assert_fires_alone(p.audit(), "flush-command", {"FLUSHDB"})
    assert found["evidence"]["calls"] == 1


def test_no_maxmemory(private_server):
    p = start(private_server, maxmemory=None, policy=None)
    p.client.set("a:1", 1, ex=60)
    [found] = assert_fires_alone(p.audit(), "no-maxmemory", {"maxmemory"})
    assert found["evidence"]["maxmemory"] == 0


def test_eviction_noeviction_on_a_cache(private_server):
    p = start(private_server, policy="noeviction")
    pipe = p.client.pipeline()
    for i in range(150):
        pipe.set(f"cache:page:{i}", "v", ex=600 + i)
    pipe.execute()
    [found] = assert_fires_alone(p.audit(), "eviction-policy-mismatch", {"maxmemory-policy"})
    assert found["evidence"]["reason"] == "noeviction-cache"


def test_eviction_allkeys_on_an_instance_holding_streams_and_locks(private_server):
    p = start(private_server, policy="allkeys-lru")
    for i in range(20):
        p.client.set(f"cache:page:{i}", "v", ex=600)
    streams.add(p.client, "orders", {"id": 1}, maxlen=1000)
    Lock(p.client, "checkout", ttl=30).acquire(blocking=False)
    [found] = assert_fires_alone(p.audit(), "eviction-policy-mismatch", {"maxmemory-policy"})
    ev = found["evidence"]
    assert ev["reason"] == "allkeys-evicts-data"
    assert set(ev["keyspace"]["must_not_evict"]) == {"streams", "locks"}
    assert "orders" in ev["keyspace"]["must_not_evict"]["streams"]["examples"]


def test_eviction_volatile_policy_without_any_ttl(private_server):
    p = start(private_server)
    for i in range(120):
        p.client.set(f"profile:{i}", "v")
    report = p.audit()
    [found] = assert_fires_alone(report, "eviction-policy-mismatch", {"maxmemory-policy"})
    assert found["evidence"]["reason"] == "volatile-without-ttl"


def test_unbounded_stream_and_not_a_trimmed_one(private_server):
    p = start(private_server)
    pipe = p.client.pipeline()
    for i in range(10_050):
        pipe.xadd("events:audit", {"n": i})
        pipe.xadd("events:trimmed", {"n": i})
    pipe.execute()
    p.client.xtrim("events:trimmed", maxlen=10_020, approximate=False)
    [found] = assert_fires_alone(p.audit(), "unbounded-stream", {"events:audit"})
    assert found["evidence"]["length"] == 10_050
    assert found["evidence"]["trimmed"] is False


def test_stream_consumer_lag(private_server):
    p = start(private_server)
    pipe = p.client.pipeline()
    for i in range(1_500):
        pipe.xadd("jobs", {"n": i})
    pipe.execute()
    p.client.xgroup_create("jobs", "workers", id="0")
    [found] = assert_fires_alone(p.audit(), "stream-consumer-lag", {"jobs (group workers)"})
    assert found["evidence"]["lag"] == 1_500


def test_stream_consumer_lag_counted_past_a_deleted_entry(private_server):
    """An entry deleted after the group's position leaves Redis without a lag: the audit
    counts the entries itself, up to 10,000 of them (not the read side's default 1,000)."""
    p = start(private_server)
    pipe = p.client.pipeline()
    for i in range(1_500):
        pipe.xadd("jobs", {"n": i}, id=f"{i + 1}-0")
    pipe.execute()
    p.client.xgroup_create("jobs", "workers", id="100-0")
    p.client.xdel("jobs", "700-0")
    [found] = assert_fires_alone(p.audit(), "stream-consumer-lag", {"jobs (group workers)"})
    ev = found["evidence"]
    assert (ev["lag"], ev["lag_source"], ev["lag_is_lower_bound"]) == (1_399, "xrange", False)
    assert found["message"] == (
        "group workers of jobs has 1,399 entries not yet delivered (0 consumers)"
    )


def test_stream_stuck_pending(private_server):
    p = start(private_server)
    ids = [p.client.xadd("jobs", {"n": i}) for i in range(5)]
    p.client.xgroup_create("jobs", "mailer", id="0")
    p.client.xreadgroup("mailer", "dead-worker", {"jobs": ">"}, count=5)
    # XCLAIM ... IDLE sets the idle time: an entry delivered an hour ago, no sleeping.
    p.client.xclaim("jobs", "mailer", "dead-worker", 0, ids, idle=3_600_000)
    [found] = assert_fires_alone(p.audit(), "stream-stuck-pending", {"jobs (group mailer)"})
    ev = found["evidence"]
    assert ev["pending"] == 5 and ev["max_idle_ms"] >= 3_600_000
    assert [c["name"] for c in ev["consumers_with_pending"]] == ["dead-worker"]


def test_lock_without_ttl_ours_and_foreign_but_not_the_fence(private_server):
    p = start(private_server)
    p.client.set("lock:{order-1}", "token")  # our layout, TTL lost
    p.client.set("lock:{order-1}:fence", 7)  # no TTL on purpose
    p.client.set("jobs:nightly:lock", "host-1")  # a foreign recipe
    p.client.set("cache:lock:page", "t", px=10_000)  # has its TTL
    report = p.audit()
    found = assert_fires_alone(report, "lock-without-ttl", {"lock:{order-1}", "jobs:nightly:lock"})
    assert {f["severity"] for f in found} == {"critical"}
    assert not by_rule(report, "missing-ttl")


def test_synchronized_expiry(private_server):
    p = start(private_server)
    second = int(p.client.time()[0]) + 3_600
    pipe = p.client.pipeline()
    for i in range(1_000):
        pipe.set(f"cache:page:{i}", "v")
        pipe.pexpireat(f"cache:page:{i}", second * 1000)
    for i in range(200):  # spread over many seconds: not a finding
        pipe.set(f"cache:user:{i}", "v", ex=600 + i * 7)
    pipe.execute()
    [found] = assert_fires_alone(p.audit(), "synchronized-expiry", {"cache:page"})
    assert found["evidence"]["second"] == second
    assert found["evidence"]["keys_in_second"] == 1_000


def test_connection_pressure(private_server):
    p = start(private_server)
    p.client.set("a:1", 1, ex=60)
    p.client.config_set("maxclients", 6)
    extra, refused = [], 0
    for _ in range(10):
        conn = p.connect(retry=Retry(NoBackoff(), 0))  # no client-side retries: refused is refused
        try:
            conn.ping()
        except redis.ConnectionError:
            refused += 1
        extra.append(conn)
    for conn in extra:
        conn.close()
    assert refused
    [found] = assert_fires_alone(p.audit(), "connection-pressure", {"clients"})
    assert found["evidence"]["rejected_connections"] >= refused
    assert found["evidence"]["maxclients"] == 6


def test_logical_databases(private_server):
    p = start(private_server)
    p.client.set("a:1", 1, ex=60)
    other = p.connect(db=2)
    other.set("b:1", 1, ex=60)
    other.close()
    [found] = assert_fires_alone(p.audit(), "logical-databases", {"databases"})
    assert found["severity"] == "info"
    assert found["evidence"] == {"databases": {"db0": 1, "db2": 1}, "scanned_db": 0}


def test_no_namespace(private_server):
    p = start(private_server)
    for i in range(12):
        p.client.set(f"plain{i}", 1, ex=60)
    p.client.set("app:x:1", 1, ex=60)
    [found] = assert_fires_alone(p.audit(), "no-namespace", {"(root)"})
    assert found["evidence"]["keys"] == 12 and len(found["evidence"]["examples"]) == 5


def test_long_key_names(private_server):
    p = start(private_server)
    p.client.set("docs:" + "x" * 300, 1, ex=60)
    p.client.set("docs:short", 1, ex=60)
    [found] = assert_fires_alone(p.audit(), "long-key-names", {"docs"})
    assert found["evidence"]["longest_bytes"] == 305


def test_slow_commands(private_server):
    p = start(private_server, "--slowlog-log-slower-than", "10000")  # Redis's default
    p.client.set("a:1", 1, ex=60)
    # A busy Lua loop is slower than the default 10 ms slowlog threshold on any machine.
    p.client.eval("local i = 0 while i < 5000000 do i = i + 1 end return i", 0)
    [found] = assert_fires_alone(p.audit(), "slow-commands", {"EVAL"})
    assert found["evidence"]["slowest_us"] >= 10_000


def test_dynamic_lua(private_server):
    p = start(private_server)
    pipe = p.client.pipeline()
    for i in range(1_001):
        pipe.eval(f"return {i}", 0)
    pipe.execute()
    [found] = assert_fires_alone(p.audit(), "dynamic-lua", {"script cache"})
    assert found["evidence"]["number_of_cached_scripts"] == 1_001


def test_default_user_nopass(private_server):
    p = start(private_server, password=None)
    p.client.set("a:1", 1, ex=60)
    [found] = assert_fires_alone(p.audit(), "default-user-nopass", {"default user"})
    assert found["severity"] == "critical" and found["evidence"]["nopass"] is True


def test_hot_keys_under_an_lfu_policy(private_server):
    p = start(private_server, policy="allkeys-lfu")
    p.client.config_set("lfu-log-factor", 0)  # every access counts: 300 GETs make it hot
    p.client.set("product:hot", "v", ex=600)
    for i in range(20):
        p.client.set(f"product:cold:{i}", "v", ex=600)
    pipe = p.client.pipeline()
    for _ in range(300):
        pipe.get("product:hot")
    pipe.execute()
    [found] = assert_fires_alone(p.audit(), "hot-keys", {"product:hot"})
    assert found["evidence"]["freq"] >= 200 and found["evidence"]["probed_keys"] == 21


def test_hot_keys_skipped_without_lfu(private_server):
    p = start(private_server)
    [skip] = [s for s in p.audit()["skipped"] if s["rule"] == "hot-keys"]
    assert "volatile-lru" in skip["reason"] and "LFU" in skip["reason"]


def test_clean_well_configured_dataset_has_no_warning(private_server):
    """Our own pattern layer's layouts, TTLs where they belong, a trimmed stream."""
    p = start(private_server)
    c = p.client
    cache = Cache(c, ttl=600)
    for i in range(50):
        cache.set(f"product:{i}", {"price": i})
    sessions = SessionStore(c, ttl=1800)
    for i in range(10):
        sessions.create(f"u{i}", {"cart": [i]})
    for resource in ("checkout", "invoice"):
        Lock(c, resource, ttl=30).acquire(blocking=False)
    limiter = RateLimiter(c, "api", 100, 60, algorithm="fixed")
    for i in range(10):
        limiter.hit(f"client-{i}")
    for i in range(300):
        streams.add(c, "orders", {"n": i}, maxlen=100, approximate=False)
    streams.ensure_group(c, "orders", "billing", start_id="$")
    for i in range(10):
        c.hset(f"user:{i}", "name", "ada")  # persistent data: info at most
    report = p.audit()
    loud = [(f["rule"], f["subject"]) for f in report["findings"] if f["severity"] in SEVERE]
    assert not loud, loud
    assert report["scanned_keys"] >= 90
    assert {s["rule"] for s in report["skipped"]} == {"hot-keys"}
