"""Benchmark: pub/sub messages per second delivered end to end to an SSE client.

Starts a private redis-server and the real dashboard server (``redis-dashboard
serve``: gunicorn gthread, one worker), opens ``/pubsub/tail?channel=bench`` with a
plain HTTP client that parses the Server-Sent Events, and publishes for a few
seconds at each target rate (``0`` = as fast as one pipelined publisher can).
For every run it reports:

* published: messages PUBLISHed (and their rate),
* received: messages the dashboard's subscription got,
* delivered: messages the SSE client parsed (and their rate, first publish to last
  message),
* dropped: messages the dashboard's bounded buffer dropped (it says so on the
  stream); ``lost`` = published - received (e.g. Redis dropping a subscriber that
  exceeded client-output-buffer-limit pubsub; the dashboard then resubscribes),
* the dashboard process's peak RSS.

    .venv/bin/python bench/pubsub_tail.py
    .venv/bin/python bench/pubsub_tail.py --rates 0 20000 --seconds 5 --payload 512

Not a test: numbers depend on the machine. docs/live-streams.md records a run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard.embedded import EmbeddedRedis, free_port


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


class SseCounter(threading.Thread):
    """Reads the tail's event stream and counts messages (no rendering)."""

    def __init__(self, port: int, channel: str) -> None:
        super().__init__(daemon=True)
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.conn.request("GET", f"/pubsub/tail?channel={channel}")
        self.response = self.conn.getresponse()
        assert self.response.status == 200, self.response.status
        self.delivered = 0
        self.last_at = 0.0
        self.stats: dict = {}
        self.subscribed = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        event = None
        try:
            while True:
                line = self.response.readline()
                if not line:
                    return
                line = line.rstrip(b"\n")
                if line.startswith(b"event: "):
                    event = line[7:].decode()
                elif line.startswith(b"data: "):
                    data = json.loads(line[6:])
                    with self.lock:
                        if event == "messages":
                            self.delivered += len(data["messages"])
                            self.last_at = time.perf_counter()
                        elif event == "stats":
                            self.stats = data
                            if data["subscribed"]:
                                self.subscribed.set()
        except OSError:
            return

    def snapshot(self) -> tuple[int, float, dict]:
        with self.lock:
            return self.delivered, self.last_at, dict(self.stats)


def run_once(port: int, r: redis.Redis, rate: int, seconds: float, payload: bytes) -> dict:
    channel = f"bench-{rate}-{time.monotonic_ns()}"
    reader = SseCounter(port, channel)
    reader.start()
    if not reader.subscribed.wait(10):
        raise RuntimeError("the tail did not subscribe")
    batch = 100
    published = 0
    start = time.perf_counter()
    end = start + seconds
    with r.pipeline(transaction=False) as pipe:
        while time.perf_counter() < end:
            for _ in range(batch):
                pipe.publish(channel, payload)
            pipe.execute()
            published += batch
            if rate:
                ahead = published / rate - (time.perf_counter() - start)
                if ahead > 0:
                    time.sleep(ahead)
    publish_s = time.perf_counter() - start
    # wait until the dashboard has accounted for every message it received
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        delivered, last_at, stats = reader.snapshot()
        settled = stats.get("received", 0) >= published and stats.get("buffered", 1) == 0
        if settled and delivered >= stats.get("delivered", 0):
            break
        time.sleep(0.2)
    delivered, last_at, stats = reader.snapshot()
    reader.conn.sock.close()
    deliver_s = max(last_at - start, 1e-9)
    return {
        "target_rate": rate or "max",
        "published": published,
        "publish_rate": round(published / publish_s),
        "received": stats.get("received"),
        "delivered": delivered,
        "delivered_rate": round(delivered / deliver_s),
        "dropped": stats.get("dropped"),
        "lost": published - (stats.get("received") or 0),
        "reconnects": stats.get("reconnects"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=int, nargs="+", default=[1000, 10000, 50000, 0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--payload", type=int, default=200, help="payload bytes (JSON)")
    parser.add_argument("--tail-buffer", type=int, default=1000)
    args = parser.parse_args()
    filler = "x" * max(0, args.payload - 30)
    payload = json.dumps({"id": 12345, "kind": "order", "pad": filler}).encode()

    with EmbeddedRedis() as server:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_DASHBOARD_")}
        cmd = [sys.executable, "-m", "dashboard.cli", "serve", "--port", str(port)]
        cmd += ["--url", server.url, "--tail-buffer", str(args.tail_buffer)]
        proc = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
        try:
            for _ in range(200):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except OSError:
                    time.sleep(0.05)
            r = redis.Redis(port=server.port)
            print(f"payload {len(payload)} bytes, tail_buffer {args.tail_buffer}, "
                  f"{args.seconds:g} s per run")  # fmt: skip
            header = ("target/s", "published", "pub/s", "received", "delivered", "deliv/s",
                      "dropped", "lost", "reconnects")  # fmt: skip
            print("  ".join(f"{h:>10}" for h in header))
            for rate in args.rates:
                row = run_once(port, r, rate, args.seconds, payload)
                cells = (row["target_rate"], row["published"], row["publish_rate"],
                         row["received"], row["delivered"], row["delivered_rate"],
                         row["dropped"], row["lost"], row["reconnects"])  # fmt: skip
                print("  ".join(f"{c:>10}" for c in cells), flush=True)
            print(f"dashboard peak RSS: {rss_kb(proc.pid) / 1024:.0f} MB")
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
