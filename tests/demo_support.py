"""Helpers for the demo tests: quick timings, a playground app, and `redis-dashboard demo`
as a real process (its banner parsed, its process tree recorded)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from dashboard.demo.cards import CardConfig
from dashboard.demo.fulfillment import WorkerTimings
from dashboard.demo.shop import ShopConfig
from dashboard.embedded import free_port

QUICK_CARDS = CardConfig(
    stampede_loader_s=0.2, race_work_s=0.1, lease_s=0.2, pause_s=0.5, reclaim_timeout_s=30
)
QUICK_SHOP = ShopConfig(
    db_latency_s=0.0,
    timings=WorkerTimings(claim_idle_ms=300, claim_every_ms=100, block_ms=100, crash_s=1.0),
)


def wait_for(check, timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    """Poll ``check()`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} (last: {value!r})")
        time.sleep(interval)


def csrf(web, path: str = "/playground") -> str:
    html = web.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def run_card(web, card: str, action: str, token: str, **form):
    """POST a card action asking for JSON; returns (status, outcome)."""
    reply = web.post(
        f"/playground/{card}/{action}",
        data={"csrf_token": token, **form},
        headers={"Accept": "application/json"},
    )
    return reply.status_code, reply.get_json()


def finished(web, card: str, timeout: float = 60.0) -> dict:
    """The card's outcome once it is no longer running."""

    def done():
        outcome = web.get(f"/playground/card/{card}.json").get_json()["outcome"]
        return outcome if outcome["state"] != "running" else None

    return wait_for(done, timeout, 0.1, f"card {card} to finish")


def close_playground(app) -> None:
    playground = app.extensions["redis_dashboard"].extras.get("playground")
    if playground is not None:
        playground.close()


# --- `redis-dashboard demo` as a process ----------------------------------------------------
@dataclass
class DemoProcess:
    proc: subprocess.Popen
    base: str
    port: int
    lines: list[str] = field(default_factory=list)

    def banner(self, timeout: float = 30.0) -> str:
        wait_for(lambda: any("Ctrl-C" in line for line in self.lines), timeout, what="banner")
        return "\n".join(self.lines)

    def redis_port(self) -> int:
        return int(re.search(r"redis://127\.0\.0\.1:(\d+)/0", self.banner()).group(1))

    def redis_pid(self) -> int | None:
        found = re.search(r"redis-server, pid (\d+)", self.banner())
        return int(found.group(1)) if found else None

    def get(self, path: str) -> bytes:
        return urllib.request.urlopen(self.base + path, timeout=10).read()

    def descendants(self) -> list[int]:
        return descendants(self.proc.pid)

    def stop(self, sig: int = signal.SIGINT, group: bool = True) -> int:
        """Send ``sig`` (to the whole process group, as Ctrl-C does) and wait."""
        if self.proc.poll() is None:
            if group:
                os.killpg(self.proc.pid, sig)
            else:
                self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise


def start_demo(
    *args: str, path: str | None = None, env: dict | None = None, timeout: float = 60.0
) -> DemoProcess:
    """Start ``python -m dashboard.cli demo --port <free> *args``; wait for /healthz."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_DASHBOARD_")}
    env = {**environ, **(env or {})}
    if path is not None:
        env["PATH"] = path
    command = [sys.executable, "-m", "dashboard.cli", "demo", "--port", str(port), *args]
    proc = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: a Ctrl-C stand-in reaches all of it
    )
    demo = DemoProcess(proc, f"http://127.0.0.1:{port}", port)

    def pump() -> None:
        for line in proc.stdout:
            demo.lines.append(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()

    def healthy():
        if proc.poll() is not None:
            raise AssertionError("demo exited:\n" + "\n".join(demo.lines))
        try:
            return demo.get("/healthz")
        except OSError:
            return None

    try:
        wait_for(healthy, timeout, 0.1, "/healthz of the demo")
    except BaseException:
        demo.stop(signal.SIGKILL)
        raise
    return demo


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, or a gone process, is not alive)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
