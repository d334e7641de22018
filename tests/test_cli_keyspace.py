import json
import re
import subprocess
import sys
from pathlib import Path

from dashboard.cli import main

DOC = (Path(__file__).resolve().parent.parent / "docs" / "scan.md").read_text()


def _plant(r):
    for i in range(20):
        r.set(f"user:{i}", "x" * 10, ex=600 if i < 5 else None)
    r.hset("cache:product:1", mapping={"a": "b" * 5000})
    r.set(b"\xffraw", "v" * 3000)


def test_keyspace_json(r, redis_url, capsys):
    _plant(r)
    assert main(["keyspace", "--url", redis_url, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["scanned_keys"] == r.dbsize()
    assert report["totals"]["keys"] == 22
    user = next(n for n in report["namespaces"] if n["namespace"] == "user")
    assert user["keys"] == 20 and user["with_ttl"] == 5 and user["ttl_coverage"] == 0.25
    assert report["top_keys"][0]["key"] == "cache:product:1"
    assert report["top_keys"][1]["key"] == "\\xffraw"
    assert report["path"] == "lua"


def test_keyspace_json_fields_documented(r, redis_url, capsys):
    _plant(r)
    main(["keyspace", "--url", redis_url, "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    section = DOC.split("## `redis-dashboard keyspace`")[1]
    for name in [*report, *report["totals"], *report["namespaces"][0]]:
        assert f"`{name}`" in section or f"`{name}[]`" in section, name


def test_keyspace_text(r, redis_url, capsys):
    _plant(r)
    assert main(["keyspace", "--url", redis_url]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^user\s+20\b", out, re.M)
    assert re.search(r"^\(root\)\s+1\b", out, re.M)
    assert "\\xffraw" in out


def test_keyspace_is_read_only(r, redis_url, capsys):
    _plant(r)
    before = r.info("commandstats")
    main(["keyspace", "--url", redis_url, "--format", "json"])
    after = r.info("commandstats")
    writes = {"cmdstat_set", "cmdstat_del", "cmdstat_hset", "cmdstat_expire", "cmdstat_evalsha"}
    for name in writes:
        assert after.get(name, {}).get("calls", 0) == before.get(name, {}).get("calls", 0), name


def test_keyspace_bad_url_and_unreachable_exit_2():
    for url in ("localhost:6379", "redis://127.0.0.1:1/0"):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "dashboard.cli",
                "keyspace",
                "--url",
                url,
                "--connect-timeout",
                "0.5",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert done.stdout == ""
