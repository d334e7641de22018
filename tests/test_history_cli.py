"""``redis-dashboard keyspace --compare``: compare with the last stored scan, and exit 1
when a namespace grew past a limit (a CI or cron gate)."""

import argparse
import json

import pytest

from dashboard.cli import main
from dashboard.history import queries
from dashboard.history.cli import parse_size
from dashboard.history.store import Store


def _plant(r, prefix, n):
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        pipe.set(f"{prefix}:{i}", "v" * 30)
    pipe.execute()


def _run(capsys, redis_url, state, *extra):
    code = main(
        ["keyspace", "--url", redis_url, "--state", state, "--compare", "--format", "json", *extra]
    )
    return code, json.loads(capsys.readouterr().out)


def test_first_run_is_the_baseline_then_growth_fails_the_gate(r, redis_url, tmp_path, capsys):
    state = str(tmp_path / "cli.sqlite")
    _plant(r, "orders", 10)
    code, report = _run(capsys, redis_url, state, "--max-growth-keys", "1000")
    assert code == 0 and report["compare"] is None and report["stored"]
    _plant(r, "orders", 5010)
    code, report = _run(capsys, redis_url, state, "--max-growth-keys", "1000")
    assert code == 1
    assert [e["namespace"] for e in report["exceeded"]] == ["orders"]
    row = next(n for n in report["compare"]["namespaces"] if n["namespace"] == "orders")
    assert row["keys_delta"] == 5000 and row["bytes_delta"] > 0
    assert report["compare"]["findings"] is None  # a CLI scan has no audit to compare
    code, report = _run(capsys, redis_url, state, "--max-growth-keys", "1000")
    assert code == 0 and report["exceeded"] == []  # compared with the run just before
    code, _ = _run(capsys, redis_url, state)  # no limit: report only
    assert code == 0
    store = Store(state)
    assert [s["source"] for s in queries.scans(store)] == ["cli"] * 4
    store.close()


def test_bytes_and_percent_limits(r, redis_url, tmp_path, capsys):
    state = str(tmp_path / "b.sqlite")
    r.set("big:1", "x" * 2_000_000)
    _run(capsys, redis_url, state)
    r.set("big:2", "x" * 1_000_000)
    code, report = _run(capsys, redis_url, state, "--max-growth-bytes", "500KB")
    assert code == 1 and "bytes" in report["exceeded"][0]["why"][0]
    r.set("big:3", "x" * 100_000)
    code, _ = _run(capsys, redis_url, state, "--max-growth-percent", "50")
    assert code == 0  # about +3 %
    r.set("big:4", "x" * 3_000_000)
    code, report = _run(capsys, redis_url, state, "--max-growth-percent", "50")
    assert code == 1 and "%" in report["exceeded"][0]["why"][0]


def test_beside_a_running_dashboard_it_compares_without_writing(r, redis_url, tmp_path, capsys):
    state = str(tmp_path / "busy.sqlite")
    _plant(r, "a", 5)
    _run(capsys, redis_url, state)
    writer = Store(state)  # a dashboard holds the file
    try:
        _plant(r, "a", 50)
        code, report = _run(capsys, redis_url, state, "--max-growth-keys", "10")
        assert code == 1 and not report["stored"]
        assert "another redis-dashboard process" in report["not_stored_because"]
        assert len(queries.scans(writer)) == 1
    finally:
        writer.close()


def test_text_output_names_the_namespaces_that_grew(r, redis_url, tmp_path, capsys):
    state = str(tmp_path / "t.sqlite")
    assert main(["keyspace", "--url", redis_url, "--state", state, "--compare"]) == 0
    assert "baseline" in capsys.readouterr().out
    _plant(r, "queue", 20)
    code = main(
        ["keyspace", "--url", redis_url, "--state", state, "--compare", "--max-growth-keys", "5"]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "queue" in out and "appeared" in out and "+20" in out and "grew past the limits" in out


def test_usage_errors_exit_2(redis_url, tmp_path, capsys):
    assert main(["keyspace", "--url", redis_url, "--compare", "--no-state"]) == 2
    assert "--no-state" in capsys.readouterr().err
    assert (
        main(
            [
                "keyspace",
                "--url",
                "redis://127.0.0.1:1/0",
                "--compare",
                "--state",
                str(tmp_path / "x.db"),
            ]
        )
        == 2
    )
    with pytest.raises(SystemExit):
        main(["keyspace", "--compare", "--max-growth-bytes", "lots"])


def test_sizes():
    assert parse_size("2048") == 2048
    assert parse_size("500MB") == 500 * 1024**2
    assert parse_size("1.5GiB") == int(1.5 * 1024**3)
    assert parse_size("10k") == 10240
    with pytest.raises(argparse.ArgumentTypeError):
        parse_size("ten")
