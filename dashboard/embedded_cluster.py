"""A private Redis Cluster, built from :class:`~dashboard.embedded.EmbeddedRedis` nodes.

For the test suite and ``bench/``: real servers on free ports in temp dirs, never
a server that was already running, every process stopped on :meth:`stop` and
killed with its parent (``PR_SET_PDEATHSIG``) if the starter dies.

The cluster is formed with plain commands (``CLUSTER SET-CONFIG-EPOCH``,
``ADDSLOTSRANGE``, ``MEET``, ``REPLICATE``), not ``redis-cli --cluster create``,
which sleeps a whole second between its checks: the nodes start in parallel and
each step waits only until the servers report the state it needs.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from dashboard.embedded import EmbeddedRedis, Managed, admin_client, free_port, wait_for

SLOTS = 16384


def _myself(client: redis.Redis) -> dict[str, Any]:
    """The node's own line of CLUSTER NODES: id, flags, slots, migrations in flight."""
    for line in client.execute_command("CLUSTER", "NODES").decode().splitlines():
        fields = line.split()
        if "myself" in fields[2].split(","):
            slots = [f for f in fields[8:] if not f.startswith("[")]
            moving = [f for f in fields[8:] if f.startswith("[")]
            return {
                "id": fields[0],
                "flags": fields[2],
                "master": fields[3],
                "slots": slots,
                "moving": moving,
            }
    raise RuntimeError("CLUSTER NODES has no 'myself' line")


class EmbeddedCluster(Managed):
    """``primaries`` primaries with ``replicas`` replicas each, slots split evenly.

    ``node_timeout`` (ms) is ``cluster-node-timeout``: how long a node may be
    silent before the others fail it over (small here so failover tests are quick).
    """

    def __init__(
        self,
        primaries: int = 3,
        replicas: int = 1,
        *,
        node_timeout: int = 2000,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        if primaries < 1 or replicas < 0:
            raise ValueError("need at least one primary and zero or more replicas per primary")
        self.primaries_wanted = primaries
        self.replicas_per_primary = replicas
        self.node_timeout = node_timeout
        self.extra_args = extra_args
        self.nodes: list[EmbeddedRedis] = []
        self.bus_ports: list[int] = []
        self.startup_s: float | None = None

    # --- life cycle ------------------------------------------------------------------

    def _node(self) -> EmbeddedRedis:
        bus = free_port()
        self.bus_ports.append(bus)
        args = [
            "--cluster-enabled", "yes",
            "--cluster-port", str(bus),
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(self.node_timeout),
            "--cluster-replica-validity-factor", "0",  # any replica may take over
            "--repl-diskless-sync", "yes",
            "--repl-diskless-sync-delay", "0",
            # Redis 7 lists a replica in CLUSTER SLOTS only once its replication
            # offset is non-zero; the primary's pings move it (default: every 10 s).
            "--repl-ping-replica-period", "1",
        ]  # fmt: skip
        return EmbeddedRedis(extra_args=(*args, *self.extra_args))

    def start(self, timeout: float = 60.0) -> EmbeddedCluster:
        began = time.monotonic()
        total = self.primaries_wanted * (1 + self.replicas_per_primary)
        self.nodes = [self._node() for _ in range(total)]
        try:
            for node in self.nodes:
                node.launch()
            for node in self.nodes:
                if not node.wait_ready(timeout):
                    node.start()  # port taken meanwhile: retry on a fresh one
            self._form(timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - began
        return self

    def _form(self, timeout: float) -> None:
        admins = [admin_client(n.port) for n in self.nodes]
        try:
            count = self.primaries_wanted
            for epoch, admin in enumerate(admins, start=1):
                admin.execute_command("CLUSTER", "SET-CONFIG-EPOCH", epoch)
            share = SLOTS // count
            for i, admin in enumerate(admins[:count]):
                last = SLOTS - 1 if i == count - 1 else (i + 1) * share - 1
                admin.execute_command("CLUSTER", "ADDSLOTSRANGE", i * share, last)
            for i, admin in enumerate(admins):  # every pair meets: no wait for gossip
                for node, bus in zip(self.nodes[i + 1 :], self.bus_ports[i + 1 :], strict=True):
                    admin.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, bus)
            wait_for(lambda: all(self._knows_all(a) for a in admins), "nodes to meet", timeout)
            ids = [_myself(a)["id"] for a in admins[:count]]
            for n, admin in enumerate(admins[count:]):
                admin.execute_command("CLUSTER", "REPLICATE", ids[n % count])
            self.wait_healthy(timeout)
        finally:
            for admin in admins:
                admin.close()

    def _knows_all(self, admin: redis.Redis) -> bool:
        lines = admin.execute_command("CLUSTER", "NODES").decode().splitlines()
        return len(lines) == len(self.nodes) and not any(
            "handshake" in line or "noaddr" in line for line in lines
        )

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    # --- what tests and benchmarks use ---------------------------------------------

    @property
    def url(self) -> str:
        """A ``redis+cluster://`` URL naming every node as a start-up node."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def client(self, **kwargs: Any) -> redis.RedisCluster:
        """A plain redis-py cluster client (not gated: for planting data and checks)."""
        kwargs.setdefault("socket_timeout", 10)
        return redis.RedisCluster(
            startup_nodes=[redis.cluster.ClusterNode("127.0.0.1", n.port) for n in self.nodes],
            **kwargs,
        )

    def node(self, port: int) -> EmbeddedRedis:
        return next(n for n in self.nodes if n.port == port)

    def roles(self) -> dict[str, list[EmbeddedRedis]]:
        """Live nodes by their current role (``primary``/``replica``), as each says itself."""
        out: dict[str, list[EmbeddedRedis]] = {"primary": [], "replica": []}
        for node in self.nodes:
            if not node.alive():
                continue
            with admin_client(node.port) as admin:
                flags = _myself(admin)["flags"]
            out["primary" if "master" in flags else "replica"].append(node)
        return out

    def primaries(self) -> list[EmbeddedRedis]:
        return self.roles()["primary"]

    def replicas(self) -> list[EmbeddedRedis]:
        return self.roles()["replica"]

    def replica_of(self, primary: EmbeddedRedis) -> EmbeddedRedis:
        """A live replica of ``primary``."""
        with admin_client(primary.port) as admin:
            wanted = _myself(admin)["id"]
        for node in self.replicas():
            with admin_client(node.port) as admin:
                if _myself(admin)["master"] == wanted:
                    return node
        raise LookupError(f"no live replica of 127.0.0.1:{primary.port}")

    def dbsize(self) -> int:
        """The ground truth: keys on every primary (DBSIZE), read from the primaries."""
        total = 0
        for node in self.primaries():
            with admin_client(node.port) as admin:
                total += int(admin.dbsize())
        return total

    def flush(self) -> None:
        """Empty every primary and wait until its replicas have applied the flush."""
        for node in self.primaries():
            with admin_client(node.port) as admin:
                admin.flushall()
                admin.script_flush()
                replicas = int(admin.info("replication").get("connected_slaves", 0))
                if replicas:
                    admin.execute_command("WAIT", replicas, 10_000)

    def sync_replicas(self, timeout: float = 30.0) -> None:
        """Wait until every replica has applied everything its primary has written."""
        for node in self.primaries():
            with admin_client(node.port) as admin:
                wanted = int(admin.info("replication").get("connected_slaves", 0))
                if wanted:
                    acked = admin.execute_command("WAIT", wanted, int(timeout * 1000))
                    if int(acked) < wanted:
                        raise TimeoutError(f"replicas of 127.0.0.1:{node.port} did not catch up")

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Every node up and agreeing: state ok, all slots served, each primary with its
        replicas linked, and no slot migrating or importing."""
        wait_for(self._healthy, "the cluster to be healthy", timeout)

    def _healthy(self) -> bool:
        """True when whole; otherwise raises LookupError saying what is not yet so
        (``wait_for`` counts it as "not yet" and quotes the last one if it times out)."""
        views = []
        for node in self.nodes:
            where = f"127.0.0.1:{node.port}"
            if not node.alive():
                raise LookupError(f"{where} is down")
            with admin_client(node.port) as admin:
                state = admin.cluster("info")["cluster_state"]
                if state != "ok":
                    raise LookupError(f"{where} says cluster_state {state}")
                me = _myself(admin)
                if me["moving"] or "fail" in me["flags"]:
                    raise LookupError(f"{where}: flags {me['flags']}, moving {me['moving']}")
                if "slave" in me["flags"]:
                    link = admin.info("replication").get("master_link_status")
                    if link != "up":
                        raise LookupError(f"{where}: replica link {link}")
                views.append(_slot_map(admin))
        for (first, last), nodes in views[0].items():
            if len(nodes) != 1 + self.replicas_per_primary:
                raise LookupError(f"slots {first}-{last} are served by {nodes}")
        for node, view in zip(self.nodes, views, strict=True):
            if view != views[0]:
                raise LookupError(f"127.0.0.1:{node.port} sees {view}, not {views[0]}")
        return True

    def wait_converged(self, timeout: float = 30.0) -> None:
        """Every live node reports the same slot map, served by live primaries only
        (after a failover, before the crashed node is back)."""
        alive = {n.port for n in self.nodes if n.alive()}

        def converged() -> bool:
            views = []
            for port in alive:
                with admin_client(port) as admin:
                    views.append(_slot_map(admin))
            owners = {nodes[0] for nodes in views[0].values()}
            return owners <= alive and all(view == views[0] for view in views)

        wait_for(converged, "every node to agree on the new slot owners", timeout)

    def heal(self, timeout: float = 60.0) -> None:
        """Undo what a test did to the topology: restart crashed nodes, settle slots
        left migrating, and wait until the cluster is whole again (roles may differ)."""
        for node in self.nodes:
            if not node.alive():
                node.restart()
        for node in self.nodes:
            with admin_client(node.port) as admin:
                for marker in _myself(admin)["moving"]:
                    slot = marker.strip("[]").split("-")[0]
                    admin.execute_command("CLUSTER", "SETSLOT", slot, "STABLE")
        self.wait_healthy(timeout)

    def describe(self) -> str:
        """Each node's state and its own CLUSTER NODES line, to say why it is not whole."""
        lines = []
        for node in self.nodes:
            if not node.alive():
                lines.append(f"127.0.0.1:{node.port} down")
                continue
            try:
                with admin_client(node.port) as admin:
                    state = admin.cluster("info")["cluster_state"]
                    mine = [
                        line
                        for line in admin.execute_command("CLUSTER", "NODES").decode().splitlines()
                        if "myself" in line
                    ]
                lines.append(f"127.0.0.1:{node.port} {state}: {' '.join(mine)}")
            except (redis.RedisError, OSError) as exc:
                lines.append(f"127.0.0.1:{node.port} {exc}")
        return "; ".join(lines)

    def rebuild(self, timeout: float = 60.0) -> EmbeddedCluster:
        """Stop every node and form a fresh cluster (new ports): the last resort when
        :meth:`heal` cannot make the old one whole."""
        self.stop()
        self.nodes, self.bus_ports = [], []
        return self.start(timeout)

    def begin_migration(
        self, slots: list[int], source: EmbeddedRedis, target: EmbeddedRedis
    ) -> None:
        """Mark ``slots`` IMPORTING on ``target`` and MIGRATING on ``source`` (no key moves yet)."""
        with admin_client(source.port) as src, admin_client(target.port) as dst:
            src_id, dst_id = _myself(src)["id"], _myself(dst)["id"]
            for slot in slots:
                dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
                src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)

    def move_keys(
        self, slots: list[int], source: EmbeddedRedis, target: EmbeddedRedis, limit: int = 0
    ) -> int:
        """MIGRATE the keys of ``slots`` to ``target``: at most ``limit`` keys (0: all)."""
        moved = 0
        with admin_client(source.port) as src:
            for slot in slots:
                while True:
                    want = 100 if not limit else min(100, limit - moved)
                    keys = (
                        src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, want) if want else []
                    )
                    if not keys:
                        break
                    src.execute_command(
                        "MIGRATE", "127.0.0.1", target.port, "", 0, 10_000, "KEYS", *keys
                    )
                    moved += len(keys)
        return moved

    def finish_migration(self, slots: list[int], target: EmbeddedRedis) -> None:
        """Give ``slots`` to ``target`` on every primary (target first, as redis-cli does)."""
        with admin_client(target.port) as dst:
            dst_id = _myself(dst)["id"]
        owners = [target, *(n for n in self.primaries() if n is not target)]
        for node in owners:
            with admin_client(node.port) as admin:
                for slot in slots:
                    admin.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)

    def migrate(self, slots: list[int], source: EmbeddedRedis, target: EmbeddedRedis) -> int:
        """Reshard ``slots`` from ``source`` to ``target`` with their keys; returns keys moved."""
        self.begin_migration(slots, source, target)
        moved = self.move_keys(slots, source, target)
        self.finish_migration(slots, target)
        return moved

    def slots_of(self, node: EmbeddedRedis) -> list[int]:
        """The slots ``node`` serves, in its own view."""
        with admin_client(node.port) as admin:
            out: list[int] = []
            for spec in _myself(admin)["slots"]:
                first, _, last = spec.partition("-")
                out += range(int(first), int(last or first) + 1)
            return out

    def failover(self, primary: EmbeddedRedis, timeout: float = 30.0) -> EmbeddedRedis:
        """``CLUSTER FAILOVER`` on a replica of ``primary``; returns the new primary."""
        replica = self.replica_of(primary)
        with admin_client(replica.port) as admin, admin_client(primary.port) as old:
            admin.execute_command("CLUSTER", "FAILOVER")
            wait_for(lambda: "master" in _myself(admin)["flags"], "the replica to take over")
            wait_for(lambda: "slave" in _myself(old)["flags"], "the old primary to step down")
        # every node agrees on the new owner; the demoted node's resync is left to heal()
        self.wait_converged(timeout)
        return replica


def _slot_map(admin: redis.Redis) -> dict[tuple[int, int], tuple[int, ...]]:
    """``{(first, last): (primary port, replica ports...)}`` as one node sees it."""
    out = {}
    for entry in admin.execute_command("CLUSTER", "SLOTS"):
        first, last, *nodes = entry
        ports = tuple(int(n[1]) for n in nodes)
        out[(int(first), int(last))] = (ports[0], *sorted(ports[1:]))
    return out
