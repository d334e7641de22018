"""Connected clients (CLIENT LIST), grouped so ten thousand connections read as a table.

One CLIENT LIST per primary and refresh. The reading keeps no per-client state
beyond a bounded top list: groups by client name, address (host), last command,
ACL user and client library, each with counts, idle and age extremes and the
memory the server spends on them (output buffers ``omem``, query buffers ``qbuf``,
``tot-mem``); and the ``TOP_CLIENTS`` clients idle longest and with the biggest
output buffers (the two usual reasons to look).
"""

from __future__ import annotations

from typing import Any

from dashboard.inspect.errors import text
from dashboard.inspect.server.tables import per_node, raw_command

TOP_CLIENTS = 50
GROUP_ROWS = 100
DIMENSIONS = {"name": "name", "addr": "host", "cmd": "cmd", "user": "user", "lib": "lib"}
_INTS = ("id", "age", "idle", "db", "sub", "psub", "ssub", "qbuf", "omem", "tot-mem", "oll")
_FLAGS = {
    "S": "replica",
    "M": "primary",
    "P": "pub/sub",
    "b": "blocked",
    "x": "in MULTI",
    "t": "tracking",
    "N": "normal",
}
OWN_NAME = "redis-dashboard"


def parse_client_list(raw: Any) -> list[dict[str, Any]]:
    """CLIENT LIST text as dicts (``key=value`` fields; names cannot hold spaces)."""
    clients = []
    for line in text(raw or "").splitlines():
        fields: dict[str, Any] = {}
        for item in line.split(" "):
            name, sep, value = item.partition("=")
            if sep:
                fields[name] = value
        if fields:
            clients.append(fields)
    return clients


def _client(fields: dict[str, str], node: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _INTS:
        try:
            out[name.replace("-", "_")] = int(fields.get(name, ""))
        except ValueError:
            out[name.replace("-", "_")] = None
    addr = fields.get("addr", "")
    host = addr.rsplit(":", 1)[0] if ":" in addr else addr
    flags = fields.get("flags", "")
    lib = " ".join(p for p in (fields.get("lib-name"), fields.get("lib-ver")) if p)
    return {
        **out,
        "addr": addr,
        "host": host or "(unix socket)",
        "laddr": fields.get("laddr"),
        "name": fields.get("name") or "",
        "user": fields.get("user"),
        "lib": lib,
        "cmd": fields.get("cmd") or "",
        "flags": flags,
        "kinds": [label for flag, label in _FLAGS.items() if flag in flags],
        "own": fields.get("name") == OWN_NAME,
        "node": node,
    }


def _groups(clients: list[dict[str, Any]], field: str) -> list[dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = {}
    for c in clients:
        value = c[field] or ""
        g = groups.get(value)
        if g is None:
            g = groups[value] = {
                "value": value,
                "clients": 0,
                "idle_max": 0,
                "idle_min": None,
                "age_max": 0,
                "omem": 0,
                "qbuf": 0,
                "tot_mem": 0,
                "blocked": 0,
                "pubsub": 0,
                "own": True,
            }
        g["clients"] += 1
        idle = c["idle"] or 0
        g["idle_max"] = max(g["idle_max"], idle)
        g["idle_min"] = idle if g["idle_min"] is None else min(g["idle_min"], idle)
        g["age_max"] = max(g["age_max"], c["age"] or 0)
        for name in ("omem", "qbuf", "tot_mem"):
            g[name] += c[name] or 0
        g["blocked"] += "blocked" in c["kinds"]
        g["pubsub"] += "pub/sub" in c["kinds"]
        g["own"] = g["own"] and c["own"]
    rows = sorted(groups.values(), key=lambda g: (-g["clients"], -g["omem"], g["value"]))
    return rows[:GROUP_ROWS]


def read_clients(client: Any) -> dict[str, Any]:
    """Every primary's CLIENT LIST, grouped by each dimension, plus the top clients."""
    found = per_node(client, "CLIENT LIST", lambda c: raw_command(c, "CLIENT", "LIST"))
    clients = [
        _client(fields, address)
        for address, raw in found["nodes"].items()
        for fields in parse_client_list(raw)
    ]
    groups = {dim: _groups(clients, field) for dim, field in DIMENSIONS.items()}
    idle = sorted(clients, key=lambda c: (-(c["idle"] or 0), c["id"] or 0))[:TOP_CLIENTS]
    heavy = [c for c in clients if c["omem"] or c["qbuf"]]
    heavy.sort(key=lambda c: (-((c["omem"] or 0) + (c["qbuf"] or 0)), c["id"] or 0))
    return {
        "totals": {
            "clients": len(clients),
            "own": sum(c["own"] for c in clients),
            "blocked": sum("blocked" in c["kinds"] for c in clients),
            "pubsub": sum("pub/sub" in c["kinds"] for c in clients),
            "replicas": sum("replica" in c["kinds"] for c in clients),
            "omem": sum(c["omem"] or 0 for c in clients),
            "qbuf": sum(c["qbuf"] or 0 for c in clients),
            "tot_mem": sum(c["tot_mem"] or 0 for c in clients),
        },
        "groups": groups,
        "idle": idle,
        "buffers": heavy[:TOP_CLIENTS],
        "errors": found["errors"],
    }
