"""Helpers for tests of write actions: the session's CSRF token, and proof from the
server itself (INFO) that nothing was written."""

import re

WRITE_COMMANDS = ("expire", "pexpire", "persist", "unlink", "del", "set", "eval", "evalsha")


def csrf(client, path="/keys"):
    html = client.get(path).get_data(as_text=True)
    return re.search(r'"X-CSRF-Token": "([^"]+)"', html).group(1)


def writes_seen(r):
    """Calls of write commands (INFO commandstats) and the dataset's change counter."""
    stats = r.info("commandstats")
    calls = {name: stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in WRITE_COMMANDS}
    return calls, r.info("persistence")["rdb_changes_since_last_save"]


def wait_job(client, job_id, timeout=120):
    """Poll ``/bulk/job/<id>.json`` until the job is no longer queued or running."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/bulk/job/{job_id}.json").get_json()["job"]
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"bulk job {job_id} did not finish in {timeout} s")
