"""The CLI as a new user meets it: help that tells the truth, one-line errors, exit 2."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from dashboard.cli import build_parser, main


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_flag_of_every_command_has_help():
    for name, sub in _subparsers(build_parser()).items():
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{name} {action.option_strings[0]} has no help"


def test_demo_help_does_not_promise_what_the_demo_does_not_do():
    demo = _subparsers(build_parser())["demo"]
    flags = {a.option_strings[0]: a for a in demo._actions if a.option_strings}
    for flag in ("--url", "--allow-writes"):
        text = flags[flag].help
        assert "env REDIS_DASHBOARD" not in text and "6379" not in text, text
        assert flags[flag].default in (None, False)


def run_cli(*args: str, env: dict | None = None, timeout: float = 60):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_DASHBOARD_")}
    return subprocess.run(
        [sys.executable, "-m", "dashboard.cli", *args],
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_keyspace_of_an_empty_database_says_so(r, redis_url, capsys):
    assert main(["keyspace", "--url", redis_url]) == 0
    out = capsys.readouterr().out
    assert "None" not in out
    assert "empty database" in out


@pytest.mark.parametrize("command", ["keyspace", "audit", "serve"])
def test_help_runs(command):
    done = run_cli(command, "--help")
    assert done.returncode == 0 and "--url" in done.stdout


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_a_busy_port_is_one_line_naming_it_and_exit_2(command, redis_url, tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        extra = ["--url", redis_url] if command == "serve" else []
        empty = tmp_path / "bin"  # the demo must not start a Redis for nothing
        empty.mkdir()
        done = run_cli(command, "--port", str(port), *extra, env={"PATH": str(empty)})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert str(port) in lines[0] and "--port" in lines[0]
    assert "ERROR" not in done.stderr


def test_favicon_is_served(web):
    reply = web.get("/favicon.ico")
    assert reply.status_code == 200
    assert reply.data[:4] == b"\x00\x00\x01\x00"  # an ICO file
    assert reply.mimetype in ("image/x-icon", "image/vnd.microsoft.icon")
    assert 'rel="icon"' in web.get("/overview").get_data(as_text=True)
