"""A password on the command line never stays in the process list: the CLI warns and
moves it out of its own arguments (and so out of gunicorn's master and worker)."""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from dashboard.embedded import free_port
from dashboard.secretargs import split_secrets, url_has_password
from tests.demo_support import descendants

SECRET = "S3cr3t-pw"


@pytest.mark.parametrize(
    "url, secret",
    [
        (f"redis://:{SECRET}@h:6379/0", True),
        (f"redis://user:{SECRET}@h:6379/0", True),
        (f"redis://h:6379/0?password={SECRET}", True),
        (f"redis+sentinel://s:26379/m?sentinel_password={SECRET}", True),
        ("redis://user@h:6379/0", False),
        ("redis://h:6379/0", False),
        ("unix:///run/redis@6379.sock", False),
    ],
)
def test_url_has_password(url, secret):
    assert url_has_password(url) is secret


def test_split_secrets_finds_every_spelling():
    url = f"redis://:{SECRET}@h/0"
    args = ["serve", "--url", url, "--port", "1", f"--password={SECRET}", "--host", "h"]
    kept, hidden = split_secrets(args)
    assert SECRET not in " ".join(kept)
    assert kept == ["serve", "--port", "1", "--host", "h"]
    assert hidden == [["--url", url], ["--password", SECRET]]
    plain = ["serve", "--url", "redis://h/0"]
    assert split_secrets(plain) == (plain, [])


def _protected(private_server):
    import redis

    server = private_server()
    redis.Redis(port=server.port).config_set("requirepass", SECRET)
    return server


def _cmdlines(pid: int) -> list[str]:
    out = []
    for p in [pid, *descendants(pid)]:
        with contextlib.suppress(OSError):
            out.append(Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode())
    return out


def _wait(base: str, proc: subprocess.Popen, headers: dict | None = None) -> bytes:
    for _ in range(400):
        if proc.poll() is not None:
            raise AssertionError(f"exited: {proc.stderr.read()}")
        try:
            request = urllib.request.Request(base + "/healthz", headers=headers or {})
            return urllib.request.urlopen(request, timeout=2).read()
        except OSError:
            time.sleep(0.05)
    raise AssertionError("no answer")


def _run(*args: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_DASHBOARD_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dashboard.cli", *args, "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    return proc, f"http://127.0.0.1:{port}"


def _stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        _out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
    return err


def test_serve_keeps_the_redis_password_out_of_every_process(private_server):
    server = _protected(private_server)
    url = f"redis://:{SECRET}@127.0.0.1:{server.port}/0"
    proc, base = _run("serve", "--url", url)
    try:
        assert b'"redis":"ok"' in _wait(base, proc).replace(b" ", b"")
        overview = urllib.request.urlopen(base + "/overview.json", timeout=10).read()
        assert b'"version"' in overview  # it really talks to the password-protected server
        lines = _cmdlines(proc.pid)
        assert len(lines) >= 2  # the master and its worker
        assert not [line for line in lines if SECRET in line], lines
    finally:
        err = _stop(proc)
    assert "visible to every user" in err and "REDIS_DASHBOARD_URL" in err
    assert SECRET not in err


def test_serve_keeps_the_basic_auth_password_out_too(redis_url):
    proc, base = _run("serve", "--url", redis_url, "--username", "admin", "--password", SECRET)
    try:
        token = base64.b64encode(f"admin:{SECRET}".encode()).decode()
        _wait(base, proc)
        page = urllib.request.Request(
            base + "/overview", headers={"Authorization": f"Basic {token}"}
        )
        assert urllib.request.urlopen(page, timeout=10).status == 200
        assert not [line for line in _cmdlines(proc.pid) if SECRET in line]
    finally:
        _stop(proc)


def test_demo_with_a_password_url_keeps_it_out(private_server):
    server = _protected(private_server)
    url = f"redis://:{SECRET}@127.0.0.1:{server.port}/0"
    proc, base = _run("demo", "--url", url, "--allow-writes", "--no-traffic")
    try:
        _wait(base, proc)
        assert not [line for line in _cmdlines(proc.pid) if SECRET in line]
    finally:
        _stop(proc)


def test_docs_never_put_a_password_on_the_command_line():
    import re

    root = Path(__file__).resolve().parent.parent
    texts = {p: p.read_text() for p in [root / "README.md", *root.glob("docs/**/*.md")]}
    on_argv = re.compile(r"--url[ =]['\"]?[a-z+]+://[^\s@'\"]*:[^\s@'\"]*@")
    offenders = [str(p) for p, text in texts.items() if on_argv.search(text)]
    assert not offenders, offenders
    readme = texts[root / "README.md"]
    assert "export REDIS_DASHBOARD_URL=" in readme
