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
