"""Audit configuration, bounded observers, degradation, caps and formats (fast tests)."""

import pytest

from dashboard.inspect.audit import AuditConfig, ConfigError, load_config, run_audit
from dashboard.inspect.audit.formats import md, render
from dashboard.inspect.audit.keyrules import NsTable
from dashboard.inspect.audit.keyshape import LockDetector, SynchronizedExpiry
from dashboard.inspect.audit.thresholds import config_from_mapping

WORDS = ["lock", "locks", "mutex"]


def test_defaults_without_a_file():
    config = load_config(None)
    assert config.get("big-string", "max_bytes") == 102_400
    assert config.enabled("hot-keys") and config.severity_of("lock-without-ttl") == "critical"


def test_toml_file_is_read_and_reported(tmp_path):
    path = tmp_path / "a.toml"
    path.write_text(
        "[audit]\nmax_findings = 3\n"
        '[rules.missing-ttl]\nmin_share = 1\nexempt_types = ["hash"]\n'
        '[rules.hot-keys]\nenabled = false\nseverity = "warning"\n'
    )
    config = load_config(path)
    assert config.max_findings == 3
    assert config.get("missing-ttl", "min_share") == 1.0  # an int is fine for a float
    assert config.of("missing-ttl")["exempt_types"] == ["hash"]
    assert not config.enabled("hot-keys")
    assert config.public() == {
        "source": str(path),
        "max_findings": 3,
        "disabled": ["hot-keys"],
        "severity": {"hot-keys": "warning"},
        "thresholds": {"missing-ttl": {"min_share": 1.0, "exempt_types": ["hash"]}},
    }


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"rules": {"big-string": {"max_bytes": -1}}}, "cannot be negative"),
        ({"rules": {"big-string": {"severity": "fatal"}}}, "must be one of info"),
        ({"rules": {"big-string": {"enabled": "no"}}}, "must be of type bool"),
        ({"rules": {"missing-ttl": {"exempt_types": "hash"}}}, "list of strings"),
        ({"thresholds": {}}, "unknown table"),
        ({"audit": {"fail_on": "warning"}}, "[audit] accepts only max_findings"),
    ],
)
def test_invalid_configs_name_the_problem(data, needle):
    with pytest.raises(ConfigError, match=None) as info:
        config_from_mapping(data, "x.toml")
    assert needle in str(info.value) and "x.toml" in str(info.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read audit config"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("key", "kind", "role"),
    [
        (b"lock:{order-1}", "string", "lock"),
        (b"lock:{order-1}:fence", "string", "companion"),
        (b"lock:{order-1}:info", "hash", "companion"),
        (b"jobs:nightly:lock", "string", "lock"),
        (b"locks:report", "hash", "lock"),
        (b"app:db_lock", "string", "lock"),
        (b"mutex", "string", "lock"),
        (b"locks:registry", "set", None),
        (b"blocklist:ip", "string", None),
        (b"user:42:lockout", "string", None),
        (b"\xff\xfe:lock", "string", "lock"),
    ],
)
def test_lock_detector(key, kind, role):
    assert LockDetector(b":", WORDS).role(key, kind) == role


def test_synchronized_expiry_state_is_bounded_and_finds_the_crowded_second():
    config = AuditConfig(values={"synchronized-expiry": {"min_keys": 500, "min_share": 0.2}})
    observer = SynchronizedExpiry(config, b":", cap=10, now_ms=lambda: 1_000_000_000.0)
    facts = [(f"c:{i}".encode(), "string", 3_600_000, 10, 1) for i in range(600)]
    facts += [(f"c:s{i}".encode(), "string", 3_600_000 + i * 1000, 10, 1) for i in range(2_000)]
    for start in range(0, len(facts), 100):
        observer.add({(b"c",): facts[start : start + 100]})
        assert all(len(state[1]) <= SynchronizedExpiry.K for _, state in observer.table.items())
    [finding] = observer.findings()
    assert finding.subject == "c" and finding.evidence["second"] == 1_000_000 + 3_600
    assert 500 <= finding.evidence["keys_in_second"] <= 601
    assert finding.evidence["expiring_keys"] == 2_600


def test_namespace_table_folds_past_its_cap():
    table = NsTable(2, lambda: [0])
    for ns in [(b"a",), (b"b",), (b"c",), (b"d",), (b"a",)]:
        table[ns][0] += 1
    assert dict(table.items()) == {(b"a",): [2], (b"b",): [1], None: [2]}


def test_max_findings_caps_and_counts_the_rest(r):
    for i in range(4):
        r.set(f"lock:{{job-{i}}}", "t")
    report = run_audit(r, AuditConfig(max_findings=2))
    locks = [f for f in report["findings"] if f["rule"] == "lock-without-ttl"]
    assert len(locks) == 2
    assert {"rule": "lock-without-ttl", "findings": 2} in report["omitted"]
    status = next(s for s in report["rules"] if s["id"] == "lock-without-ttl")
    assert status["findings"] == 4


def test_disabled_rules_do_not_run(r):
    r.set("lock:{a}", "t")
    report = run_audit(r, config_from_mapping({"rules": {"lock-without-ttl": {"enabled": False}}}))
    assert not [f for f in report["findings"] if f["rule"] == "lock-without-ttl"]
    status = next(s for s in report["rules"] if s["id"] == "lock-without-ttl")
    assert status["status"] == "disabled"


def test_fakeredis_degrades_to_skipped_rules_not_errors(fake):
    """fakeredis has no INFO, CONFIG or SLOWLOG: those rules are skipped, key rules run."""
    fake.set("lock:{x}", "t")
    report = run_audit(fake)
    skipped = {s["rule"]: s["reason"] for s in report["skipped"]}
    assert "no-maxmemory" in skipped and "unknown command" in skipped["no-maxmemory"]
    assert "slow-commands" in skipped
    assert [f["subject"] for f in report["findings"] if f["rule"] == "lock-without-ttl"] == [
        "lock:{x}"
    ]
    for fmt in ("text", "json", "markdown", "sarif"):
        assert "lock-without-ttl" in render(report, fmt)


def test_markdown_escaping_is_inert():
    assert md("<b>|`x`*") == "&lt;b&gt;\\|\\`x\\`\\*"
    assert md("a\nb") == "a b"
