"""A private Sentinel set: a primary, its replicas and Sentinels watching them.

Built from :class:`~dashboard.embedded.EmbeddedRedis` (the Sentinels are
``redis-server --sentinel`` with a config file of their own), for the test suite and
``bench/``; every process stops on :meth:`EmbeddedSentinel.stop` and dies with its
starter (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import time

from dashboard.embedded import EmbeddedRedis, Managed, admin_client, wait_for

SERVICE = "mymaster"


class EmbeddedSentinel(Managed):
    """A primary, ``replicas`` replicas and ``sentinels`` Sentinels watching ``service``."""

    def __init__(
        self,
        replicas: int = 1,
        sentinels: int = 3,
        *,
        service: str = SERVICE,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 5000,
    ) -> None:
        self.service = service
        self.replica_count = replicas
        self.sentinel_count = sentinels
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.data: list[EmbeddedRedis] = []
        self.sentinels: list[EmbeddedRedis] = []
        self.startup_s: float | None = None

    def start(self, timeout: float = 60.0) -> EmbeddedSentinel:
        began = time.monotonic()
        repl = ("--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0")
        try:
            primary = EmbeddedRedis(extra_args=repl).start()
            self.data = [primary]
            for _ in range(self.replica_count):
                args = (*repl, "--replicaof", "127.0.0.1", str(primary.port))
                self.data.append(EmbeddedRedis(extra_args=args))
            for node in self.data[1:]:
                node.start()
            self._wait_replicas(primary, timeout)
            quorum = self.sentinel_count // 2 + 1
            config = (
                f"sentinel monitor {self.service} 127.0.0.1 {primary.port} {quorum}\n"
                f"sentinel down-after-milliseconds {self.service} {self.down_after_ms}\n"
                f"sentinel failover-timeout {self.service} {self.failover_timeout_ms}\n"
            )
            self.sentinels = [
                EmbeddedRedis(config=config, sentinel=True) for _ in range(self.sentinel_count)
            ]
            for node in self.sentinels:
                node.start()
                self._quicken(node)
            wait_for(self._sentinels_ready, "the Sentinels to see each other", timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - began
        return self

    def _wait_replicas(self, primary: EmbeddedRedis, timeout: float) -> None:
        def online() -> bool:
            with admin_client(primary.port) as admin:
                info = admin.info("replication")
            states = [info.get(f"slave{i}", {}).get("state") for i in range(self.replica_count)]
            return states == ["online"] * self.replica_count

        wait_for(online, "the replicas to sync", timeout)

    @staticmethod
    def _quicken(node: EmbeddedRedis) -> None:
        """Sentinel's clocks, shortened for tests (SENTINEL DEBUG, Redis 7): INFO to the
        nodes every second instead of 10 (so a restarted replica is fit to promote, and
        a former primary is reconfigured, within a second), hellos every half second."""
        with admin_client(node.port) as admin:
            admin.execute_command("SENTINEL", "DEBUG", "INFO-PERIOD", 1000, "PUBLISH-PERIOD", 500)

    def _sentinels_ready(self) -> bool:
        """Every Sentinel names the primary, knows the others, and sees every replica up
        with its link to the primary ok (else it would refuse to promote it)."""
        primary = self.primary_port()
        for node in self.sentinels:
            with admin_client(node.port) as admin:
                master = admin.sentinel_master(self.service)
                replicas = admin.sentinel_slaves(self.service)
            if master["port"] != primary or master["is_sdown"] or master["is_odown"]:
                return False
            if master["num-other-sentinels"] != self.sentinel_count - 1:
                return False
            fit = [
                r
                for r in replicas
                if not r["is_sdown"]
                and r.get("master-link-status") == "ok"
                and not r.get("master-link-down-time")
            ]
            if len(fit) != len(self.data) - 1:
                return False
        return True

    def stop(self) -> None:
        for node in [*self.sentinels, *self.data]:
            node.stop()

    # --- what tests and benchmarks use ---------------------------------------------

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}"

    def primary_port(self) -> int:
        """The primary's port as the Sentinels agree on it."""
        ports = set()
        for node in self.sentinels:
            with admin_client(node.port) as admin:
                ports.add(admin.sentinel_master(self.service)["port"])
        if len(ports) != 1:
            raise LookupError(f"the Sentinels disagree on the primary: {sorted(ports)}")
        return ports.pop()

    def primary(self) -> EmbeddedRedis:
        port = self.primary_port()
        return next(n for n in self.data if n.port == port)

    def replicas(self) -> list[EmbeddedRedis]:
        port = self.primary_port()
        return [n for n in self.data if n.port != port and n.alive()]

    def flush(self) -> None:
        with admin_client(self.primary_port()) as admin:
            admin.flushall()
            admin.script_flush()
            admin.execute_command("WAIT", len(self.data) - 1, 10_000)

    def sync_replicas(self, timeout: float = 30.0) -> None:
        with admin_client(self.primary_port()) as admin:
            wanted = len(self.replicas())
            if int(admin.execute_command("WAIT", wanted, int(timeout * 1000))) < wanted:
                raise TimeoutError("the replicas did not catch up")

    def failover(self, timeout: float = 30.0) -> EmbeddedRedis:
        """``SENTINEL FAILOVER``: a replica becomes the primary; returns it once every
        Sentinel agrees and the old primary replicates from it."""
        old = self.primary_port()
        with admin_client(self.sentinels[0].port) as admin:
            admin.execute_command("SENTINEL", "FAILOVER", self.service)
        wait_for(lambda: self.primary_port() != old, "a new primary", timeout)
        self.wait_healthy(timeout)
        return self.primary()

    def heal(self, timeout: float = 60.0) -> None:
        """Restart crashed nodes and wait until the Sentinels agree on one primary
        with every replica linked."""
        for node in self.data:
            if not node.alive():
                node.restart()
        for node in self.sentinels:
            if not node.alive():
                node.restart()
                self._quicken(node)
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Sentinels agree on one primary, every other data node replicates from it with
        its link up, and every Sentinel sees every replica."""

        def healthy() -> bool:
            primary = self.primary_port()
            for node in self.data:
                if node.port == primary:
                    continue
                with admin_client(node.port) as admin:  # a former primary: the Sentinels
                    info = admin.info("replication")  # reconfigure it at their next INFO
                if info.get("role") == "master" or info.get("master_port") != primary:
                    return False
                if info.get("master_link_status") != "up":
                    return False
            return self._sentinels_ready()

        wait_for(healthy, "the Sentinel set to be healthy", timeout)
