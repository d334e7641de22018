"""`redis-dashboard audit`: exit codes, every format, errors, ACL-restricted users."""

import json
import subprocess
import sys

import pytest
from audit_support import PASSWORD, start

from dashboard.cli import main
from dashboard.embedded import free_port
from dashboard.inspect.audit import CATALOG

RULE_IDS = [rule.id for rule in CATALOG]


def _run(capsys, *args):
    code = main(["audit", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def planted(private_server):
    """A well-configured server with one critical (lock without TTL) and one warning."""
    p = start(private_server)
    p.client.set("lock:{order-1}", "token")
    for i in range(5):
        p.client.set(f"cache:page:{i}", "v", ex=600)
    p.client.set("cache:page:leak", "v")
    return p


def test_exit_codes_follow_fail_on(planted, capsys):
    assert _run(capsys, "--url", planted.url)[0] == 1  # default --fail-on warning
    assert _run(capsys, "--url", planted.url, "--fail-on", "critical")[0] == 1
    planted.client.delete("lock:{order-1}")
    assert _run(capsys, "--url", planted.url, "--fail-on", "critical")[0] == 0
    assert _run(capsys, "--url", planted.url, "--fail-on", "warning")[0] == 1
    planted.client.delete("cache:page:leak")
    code, out, _ = _run(capsys, "--url", planted.url, "--fail-on", "info")
    assert code == 0, out
    assert "no findings" in out


def test_text_format(planted, capsys):
    code, out, err = _run(capsys, "--url", planted.url, "--format", "text")
    assert code == 1 and not err
    assert out.splitlines()[0].startswith(
        f"redis-dashboard audit of redis://:***@127.0.0.1:{planted.server.port}/0:"
    )
    assert PASSWORD not in out
    assert "CRITICAL lock-without-ttl" in out and "lock:{order-1}" in out
    assert "WARNING  missing-ttl" in out and "cache:page" in out
    assert "fix: " in out and "skipped: hot-keys" in out


def test_json_format_follows_the_contract(planted, capsys):
    code, out, _ = _run(capsys, "--url", planted.url, "--format", "json")
    report = json.loads(out)
    assert code == 1
    assert report["scanned_keys"] == 7
    assert report["summary"] == {"critical": 1, "warning": 1, "info": 0, "total": 2}
    for finding in report["findings"]:
        assert set(finding) >= {"rule", "severity", "subject", "title", "evidence", "fix"}
        assert finding["severity"] in ("critical", "warning", "info")
    assert [f["rule"] for f in report["findings"]] == ["lock-without-ttl", "missing-ttl"]
    assert [r["id"] for r in report["rules"]] == RULE_IDS
    [skipped] = report["skipped"]
    assert skipped["rule"] == "hot-keys"
    policy = planted.client.config_get("maxmemory-policy")["maxmemory-policy"]
    assert not policy.endswith("-lfu")  # the reason below is about this very policy
    assert skipped["reason"].startswith(f"maxmemory-policy is {policy}: OBJECT FREQ")
    assert "allkeys-lfu or volatile-lfu" in skipped["reason"]


def test_markdown_format(planted, capsys):
    planted.client.set("<img src=x onerror=alert(1)>|x", "v")  # a hostile key
    code, out, _ = _run(capsys, "--url", planted.url, "--format", "markdown")
    assert code == 1
    assert out.startswith("# Redis audit\n")
    assert "| critical | 1 |" in out
    assert "## critical: `lock-without-ttl` Lock without a TTL" in out
    assert "**Fix:**" in out and "`dashboard.patterns.locks`" in out
    assert "<img" not in out and "&lt;img src=x onerror=alert(1)&gt;\\|x" in out


def validate_sarif(doc: dict) -> None:
    """The parts of SARIF 2.1.0 code-scanning UIs rely on."""
    assert doc["version"] == "2.1.0" and doc["$schema"].endswith("sarif-2.1.0.json")
    [run] = doc["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "redis-dashboard" and driver["version"]
    ids = [rule["id"] for rule in driver["rules"]]
    assert ids == RULE_IDS
    for rule in driver["rules"]:
        assert rule["shortDescription"]["text"] and rule["help"]["text"]
        assert rule["defaultConfiguration"]["level"] in ("error", "warning", "note")
    for result in run["results"]:
        assert result["ruleId"] in ids and ids[result["ruleIndex"]] == result["ruleId"]
        assert result["level"] in ("error", "warning", "note")
        assert result["message"]["text"]
        [location] = result["locations"]
        assert location["physicalLocation"]["artifactLocation"]["uri"]
        assert location["physicalLocation"]["region"]["startLine"] >= 1
        [logical] = location["logicalLocations"]
        assert logical["name"] and logical["kind"]
        assert all(isinstance(v, str) for v in result["partialFingerprints"].values())


def test_sarif_format(planted, capsys, tmp_path):
    config = tmp_path / "redis-audit.toml"
    config.write_text("[rules.no-namespace]\nenabled = false\n")
    code, out, _ = _run(capsys, "--url", planted.url, "--format", "sarif", "--config", str(config))
    doc = json.loads(out)
    validate_sarif(doc)
    results = doc["runs"][0]["results"]
    assert code == 1
    assert {(r["ruleId"], r["level"]) for r in results} == {
        ("lock-without-ttl", "error"),
        ("missing-ttl", "warning"),
    }
    lock = next(r for r in results if r["ruleId"] == "lock-without-ttl")
    assert lock["locations"][0]["logicalLocations"][0]["name"] == "lock:{order-1}"
    assert lock["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == str(config)


def test_config_file_changes_thresholds_and_severities(planted, capsys, tmp_path):
    config = tmp_path / "audit.toml"
    config.write_text(
        '[rules.lock-without-ttl]\nseverity = "info"\n\n'
        '[rules.missing-ttl]\nexempt_namespaces = ["cache"]\n'
    )
    code, out, _ = _run(capsys, "--url", planted.url, "--format", "json", "--config", str(config))
    report = json.loads(out)
    assert code == 0
    assert [(f["rule"], f["severity"]) for f in report["findings"]] == [
        ("lock-without-ttl", "info")
    ]
    assert report["config"]["severity"] == {"lock-without-ttl": "info"}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[rules.no-such-rule]\n", "unknown rule 'no-such-rule'"),
        ("[rules.big-string]\nmax_byts = 1\n", "rules.big-string.max_byts: unknown setting"),
        ('[rules.big-string]\nmax_bytes = "big"\n', "must be of type int"),
        ("[rules.big-string\n", "not valid TOML"),
    ],
)
def test_bad_config_is_a_usage_error(planted, capsys, tmp_path, text, needle):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    code, out, err = _run(capsys, "--url", planted.url, "--config", str(config))
    assert code == 2 and not out
    assert needle in err and len(err.strip().splitlines()) == 1


def test_bad_url_exits_2_with_one_line(capsys):
    code, out, err = _run(capsys, "--url", "http://example.com/")
    assert code == 2 and not out
    assert len(err.strip().splitlines()) == 1 and "unsupported scheme 'http'" in err


def test_unreachable_server_exits_2_with_one_line():
    port = free_port()
    proc = subprocess.run(  # the real entry point, as CI would call it
        [
            sys.executable,
            "-m",
            "dashboard.cli",
            "audit",
            "--url",
            f"redis://127.0.0.1:{port}/0",
            "--connect-timeout",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and not proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("redis-dashboard audit:")
    assert "refused" in lines[0].lower() or "connect" in lines[0].lower()


def test_wrong_password_exits_2(planted, capsys):
    url = planted.url.replace(PASSWORD, "wrong")
    code, _, err = _run(capsys, "--url", url)
    assert code == 2 and len(err.strip().splitlines()) == 1


def _acl_user(planted, rules: str) -> str:
    planted.client.execute_command("ACL", "SETUSER", "auditor", "on", ">auditor-pw", *rules.split())
    return f"redis://auditor:auditor-pw@127.0.0.1:{planted.server.port}/0"


def test_acl_user_without_info_or_config_gets_skipped_rules(planted, capsys):
    url = _acl_user(planted, "~* &* +@all -info -config")
    code, out, _ = _run(capsys, "--url", url, "--format", "json")
    report = json.loads(out)
    skipped = {s["rule"]: s["reason"] for s in report["skipped"]}
    needs_info = {
        "flush-command",
        "no-maxmemory",
        "eviction-policy-mismatch",
        "connection-pressure",
        "logical-databases",
        "dynamic-lua",
        "hot-keys",
    }
    assert set(skipped) == needs_info
    assert all("refused by ACL (NOPERM)" in reason for reason in skipped.values()), skipped
    assert "INFO memory refused" in skipped["no-maxmemory"]
    assert "CONFIG GET refused" in skipped["no-maxmemory"]
    # Key rules still ran on the scan, and KEYS is judged from the SLOWLOG alone.
    assert {f["rule"] for f in report["findings"]} == {"lock-without-ttl", "missing-ttl"}
    assert any(i["rule"] == "keys-command" for i in report["limitations"])
    assert code == 1


def test_acl_user_without_info_falls_back_to_config(planted, capsys):
    planted.client.config_set("maxmemory", 0)
    url = _acl_user(planted, "~* &* +@all -info")
    code, out, _ = _run(capsys, "--url", url, "--format", "json")
    report = json.loads(out)
    [found] = [f for f in report["findings"] if f["rule"] == "no-maxmemory"]
    assert found["subject"] == "maxmemory"
    assert "no-maxmemory" not in {s["rule"] for s in report["skipped"]}
    assert code == 1
