"""The service behind ``/playground``: one card per pattern, the traffic simulator,
and the anti-pattern plants.

One :class:`Playground` per dashboard process. It writes with clients of its own
(never the dashboard's read-only inspection client) and only where the target
allows (:mod:`dashboard.demo.target`). A card runs one experiment at a time; the
two that take a while (a killed consumer being reclaimed, an audit of a plant)
report ``state: running`` and are refreshed until done.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

from dashboard.demo import antipatterns, cards
from dashboard.demo.cards import CardConfig, CardContext, outcome
from dashboard.demo.reclaim import streams_card
from dashboard.demo.registry import BY_ID, CARDS, CardSpec, links, plant_view
from dashboard.demo.shop import Shop, ShopConfig
from dashboard.demo.simulator import Knobs, Simulator
from dashboard.demo.target import DemoRefused, DemoTarget


class Playground:
    def __init__(
        self,
        target: DemoTarget,
        *,
        card_config: CardConfig | None = None,
        shop_config: ShopConfig | None = None,
        knobs: Knobs | None = None,
        audit: Callable[[], Any] | None = None,
    ) -> None:
        self.target = target
        self.card_config = card_config or CardConfig()
        self.shop_config = shop_config
        self.knobs = knobs
        self.audit = audit  # the app's audit handle (web.audit.AuditHandle)
        self._lock = threading.RLock()
        self._busy: set[str] = set()
        self._ctx: CardContext | None = None
        self._simulator: Simulator | None = None
        self._baseline: dict[str, Any] | None = None
        self.outcomes: dict[str, dict[str, Any]] = {}

    # --- lazily made parts ----------------------------------------------------------------
    def context(self) -> CardContext:
        with self._lock:
            if self._ctx is None:
                client = self.target.client(pool_size=128)
                shop = Shop(self.target, self.target.client(), self.shop_config)
                self._ctx = CardContext(self.target, client, shop, self.card_config)
            return self._ctx

    def simulator(self) -> Simulator:
        with self._lock:
            if self._simulator is None:
                self._simulator = Simulator(self.context().shop, self.knobs)
            return self._simulator

    def start_demo(self) -> None:
        """What ``redis-dashboard demo`` does in the web process: shop and traffic on."""
        self.target.check_writes("start the demo shop")
        self.simulator().start()

    def close(self) -> None:
        with self._lock:
            if self._simulator is not None:
                self._simulator.stop()
            if self._ctx is not None:
                self._ctx.shop.stop()
                self._ctx.shop.client.close()
                antipatterns.release_idle(self._ctx.client)  # connection-pressure plant
                self._ctx.client.close()
            self._ctx = self._simulator = None

    # --- cards ---------------------------------------------------------------------------
    def run(self, card_id: str, action: str, form: Mapping[str, str]) -> dict[str, Any]:
        """Run one action of one card; the outcome is also kept for the page."""
        spec = BY_ID.get(card_id)
        if spec is None:
            raise LookupError(f"no playground card {card_id!r}")
        actions = dict(spec.actions)
        if card_id == "antipatterns":
            actions.update(audit="Run the audit", cleanup="Clean up")
        if action not in actions:
            result = {"state": "error", "summary": f"card {card_id} has no action {action!r}; "
                      f"use one of {', '.join(actions)}", "result": {}, "events": []}  # fmt: skip
            return {**result, "action": action, "label": action}
        label = actions[action]
        with self._lock:
            if card_id in self._busy:
                return self._keep(card_id, {**self.outcome(card_id), "note": "still running"})
            self._busy.add(card_id)
        background = False
        try:
            self.target.check_writes(f"run '{label}'")
            result = self._dispatch(card_id, action, form)
            # a killed consumer is watched in the background: one kill at a time. A plant
            # waiting for its audit is not busy: more plants join the next audit run.
            background = card_id == "streams" and result.get("state") == "running"
        except (DemoRefused, ValueError, LookupError) as exc:
            kind = "refused" if isinstance(exc, DemoRefused) else "error"
            result = {"state": kind, "summary": str(exc), "result": {}, "events": []}
        except Exception as exc:  # shown on the card; the page stays up
            result = {
                "state": "error",
                "summary": f"{type(exc).__name__}: {exc}",
                "result": {},
                "events": [],
            }
        finally:
            if not background:
                with self._lock:
                    self._busy.discard(card_id)
        return self._keep(card_id, {**result, "action": action, "label": label})

    def _keep(self, card_id: str, result: dict[str, Any]) -> dict[str, Any]:
        result.setdefault("finished_at", None if result.get("state") == "running" else time.time())
        self.outcomes[card_id] = result
        return result

    def _dispatch(self, card_id: str, action: str, form: Mapping[str, str]) -> dict[str, Any]:
        ctx = self.context()
        if card_id == "streams":
            return streams_card(ctx, action, lambda o: self._keep("streams", o), self._free_streams)
        if card_id == "antipatterns":
            return self._antipattern(ctx, action)
        runner = {
            "cache": cards.cache_card,
            "stampede": cards.stampede_card,
            "sessions": cards.sessions_card,
            "ratelimit": cards.ratelimit_card,
            "locks": cards.locks_card,
            "pubsub": cards.pubsub_card,
            "leaderboard": cards.leaderboard_card,
            "hll": cards.hll_card,
        }[card_id]
        return runner(ctx, action, form)

    def _free_streams(self) -> None:
        with self._lock:
            self._busy.discard("streams")

    def outcome(self, card_id: str) -> dict[str, Any]:
        """The card's last outcome; an audit that was waited for is looked at again."""
        if card_id not in BY_ID:
            raise LookupError(f"no playground card {card_id!r}")
        current = self.outcomes.get(card_id) or {"state": "idle"}
        if card_id == "antipatterns" and current.get("state") == "running":
            current = self._keep(card_id, self._audit_progress(current))
        return current

    # --- anti-patterns ---------------------------------------------------------------------
    def _antipattern(self, ctx: CardContext, action: str) -> dict[str, Any]:
        if self._baseline is None:
            self._baseline = antipatterns.config_baseline(ctx.client, self.target)
        if action == "cleanup":
            done = antipatterns.clean_up(ctx.client, self.target, self._baseline)
            ctx.memory["planted"] = []
            return outcome("Removed every planted anti-pattern.", {"planted": []}, done)
        planted = ctx.memory.setdefault("planted", [])
        if action != "audit":
            plant, wrote = antipatterns.plant(ctx.client, self.target, action)
            planted[:] = [p for p in planted if p["id"] != plant.id]
            planted.append(
                {
                    "id": plant.id,
                    "rule": plant.rule,
                    "label": plant.label,
                    "wrote": wrote,
                    "verdict": None,
                }
            )
        result = {"planted": planted, "planted_at": time.time(), "audit": None}
        return self._audit_progress({"state": "running", "result": result, "events": []})

    def _audit_progress(self, current: dict[str, Any]) -> dict[str, Any]:
        result = dict(current["result"])
        job = self.audit() if self.audit is not None else None
        if job is None:
            return {
                **current,
                "state": "done",
                "summary": "Planted; open /audit to run the audit (no audit in this process).",
                "result": result,
            }
        report = job.report
        fresh = report is not None and report.get("started_at", 0) >= result["planted_at"]
        if job.state == "failed" and result.get("audit_started"):
            return {**current, "state": "error", "result": result,
                    "summary": f"Planted, but the audit failed: {job.error}"}  # fmt: skip
        if job.state != "running" and not fresh:
            job.start()  # (an audit that started before the plant cannot see it)
            result["audit_started"] = True
        result["audit"] = job.snapshot()["state"]  # running | done
        if not fresh:
            return {
                **current,
                "state": "running",
                "result": result,
                "summary": "Planted. The audit is running…",
            }
        planted = [
            {**p, "verdict": antipatterns.audit_verdict(antipatterns.BY_ID[p["id"]], report)}
            for p in result["planted"]
        ]
        result["planted"] = planted
        self.context().memory["planted"] = planted
        return {**current, "state": "done", "result": result, "summary": _verdict_summary(planted)}

    # --- traffic ---------------------------------------------------------------------------
    def control_simulator(self, action: str, form: Mapping[str, str]) -> dict[str, Any]:
        self.target.check_writes("run the traffic simulator")
        sim = self.simulator()
        if action == "start":
            sim.start()
        elif action == "stop":
            sim.stop()
        elif action == "update":
            values: dict[str, Any] = {}
            for name, kind in (
                ("users", int),
                ("rps", float),
                ("burst_every_s", float),
                ("burst_size", int),
                ("slow_s", float),
            ):
                if form.get(name):
                    try:
                        values[name] = kind(form[name])
                    except ValueError:
                        raise ValueError(f"{name} must be a number, got {form[name]!r}") from None
            values["slow_consumer"] = form.get("slow_consumer") in {"1", "on", "true"}
            sim.update(**values)
        else:
            raise ValueError(f"unknown simulator action {action!r}: use start, stop or update")
        return sim.stats()

    # --- the page ----------------------------------------------------------------------------
    def view(self) -> dict[str, Any]:
        sim = self._simulator
        sim_stats = sim.stats() if sim is not None else {"running": False, "knobs": None}
        if sim_stats.get("knobs") is None:
            sim_stats["knobs"] = asdict(self.knobs or Knobs())
        shop = self._ctx.shop.stats() if self._ctx is not None else None
        return {
            "target": self.target.public(),
            "simulator": sim_stats,
            "shop": shop,
            "cards": [self.card_view(spec) for spec in CARDS],
        }

    def card_view(self, spec: CardSpec) -> dict[str, Any]:
        current = self.outcome(spec.id)
        view = {
            "id": spec.id,
            "title": spec.title,
            "pattern": spec.pattern,
            "what": spec.what,
            "actions": [{"name": a, "label": label} for a, label in spec.actions],
            "links": links(self.target, spec.id, current.get("result") or {}),
            "outcome": current,
        }
        if spec.id == "antipatterns":
            view["plants"] = [plant_view(self.target, p) for p in antipatterns.PLANTS]
        return view


def _verdict_summary(planted: list[dict[str, Any]]) -> str:
    if not planted:
        return "Nothing planted: the audit ran over what is there."
    parts = []
    for p in planted:
        v = p["verdict"] or {}
        if v.get("reported"):
            parts.append(f"{p['label']}: reported by {p['rule']}")
        elif v.get("skipped"):
            parts.append(f"{p['label']}: {p['rule']} was skipped ({v['skipped']})")
        else:
            parts.append(f"{p['label']}: not reported")
    return "; ".join(parts) + "."
