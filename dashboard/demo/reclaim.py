"""The streams card: kill an order worker, watch its pending entries grow, then be
reclaimed by the survivors; revive it; add orders.

The watcher samples the group with the layer's read side
(:func:`dashboard.patterns.streams.stream_state`) every 200 ms and reports each
change, until the dead consumer holds nothing any more (or a timeout).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from dashboard.demo.cards import CardContext, outcome
from dashboard.demo.shop import ORDER_GROUP, PRODUCTS, Shop
from dashboard.patterns.streams import stream_state

KILL_TARGET = "worker-2"
SAMPLE_S = 0.2
Report = Callable[[dict[str, Any]], Any]


def streams_card(
    ctx: CardContext, action: str, report: Report, finished: Callable[[], Any]
) -> dict:
    """``report(outcome)`` receives the watcher's updates; ``finished()`` when it ends."""
    shop = ctx.shop.start()
    fulfillment = shop.fulfillment
    if action == "revive":
        fulfillment.revive(KILL_TARGET)
        return outcome(
            f"{KILL_TARGET} is back: it first re-read what was still pending under its name.",
            {"consumers": fulfillment.stats()},
        )
    if action == "orders":
        add_orders(shop, ctx.config.kill_orders, 0.0)
        return outcome(
            f"Added {ctx.config.kill_orders} orders to {shop.orders_stream}.",
            {"stream": shop.orders_stream},
        )
    crash_s = fulfillment.kill(KILL_TARGET)
    story = {
        "consumer": KILL_TARGET,
        "status": "crashing",
        "pending_now": 0,
        "peak_pending": 0,
        "reclaimed": 0,
        "stream": shop.orders_stream,
    }
    feeder = threading.Thread(
        target=add_orders, args=(shop, ctx.config.kill_orders, crash_s), daemon=True
    )
    watcher = threading.Thread(
        target=_watch, args=(ctx, story, _reclaimed(shop), report, finished), daemon=True
    )
    feeder.start()
    watcher.start()
    return {
        "state": "running",
        "summary": f"{KILL_TARGET} is crash-looping for {crash_s:g} s: it takes orders and "
        "dies before acknowledging them.",
        "result": story,
        "events": [f"killed {KILL_TARGET}"],
    }


def add_orders(shop: Shop, n: int, over_s: float) -> None:
    """``n`` order events, spread over ``over_s`` seconds."""
    products = list(PRODUCTS)
    for i in range(n):
        shop.emit_order(f"user-{i % 7}", products[i % len(products)])
        if over_s:
            time.sleep(over_s / n)


def _reclaimed(shop: Shop) -> int:
    return sum(c["reclaimed"] for c in shop.fulfillment.stats() if c["name"] != KILL_TARGET)


def _status(shop: Shop) -> str:
    return next(c["status"] for c in shop.fulfillment.stats() if c["name"] == KILL_TARGET)


def pending_of(client: Any, stream: str, consumer: str = KILL_TARGET) -> int:
    """Entries pending under ``consumer`` in the order group (XINFO CONSUMERS)."""
    state = stream_state(client, stream, pending_sample=1, lag_scan_limit=1)
    for group in state.groups:
        if group.name == ORDER_GROUP:
            return next((c.pending for c in group.consumer_list if c.name == consumer), 0)
    return 0


def _watch(
    ctx: CardContext,
    story: dict[str, Any],
    reclaimed_before: int,
    report: Report,
    finished: Callable[[], Any],
) -> None:
    shop, events = ctx.shop, [f"killed {KILL_TARGET}"]
    started = time.monotonic()
    deadline = started + shop.fulfillment.timings.crash_s + ctx.config.reclaim_timeout_s
    state = "running"
    try:
        while state == "running":
            time.sleep(SAMPLE_S)
            pending, status = pending_of(ctx.client, shop.orders_stream), _status(shop)
            if pending != story["pending_now"] or status != story["status"]:
                stamp = f"{time.monotonic() - started:5.1f} s"
                events.append(f"{stamp}  {KILL_TARGET}: {status}, {pending} pending")
            story = {
                **story,
                "status": status,
                "pending_now": pending,
                "peak_pending": max(story["peak_pending"], pending),
                "reclaimed": _reclaimed(shop) - reclaimed_before,
            }
            reclaimed = status == "dead" and pending == 0
            if reclaimed or status not in {"crashing", "dead"} or time.monotonic() > deadline:
                state = "done"
            report(
                {
                    "state": state,
                    "summary": _summary(story, state),
                    "result": story,
                    "events": events[-12:],
                    "action": "kill",
                    "label": f"Kill {KILL_TARGET}",
                }
            )
    except Exception as exc:  # the card says so instead of spinning forever
        report({"state": "error", "summary": f"watching stopped: {exc}", "result": story,
                "events": events[-12:], "action": "kill"})  # fmt: skip
    finally:
        finished()


def _summary(story: dict[str, Any], state: str) -> str:
    if state == "running":
        return (
            f"{KILL_TARGET} is {story['status']}: {story['pending_now']} entries pending under "
            f"its name (peak {story['peak_pending']})."
        )
    if story["status"] == "dead" and story["pending_now"] == 0:
        return (
            f"{KILL_TARGET} died holding up to {story['peak_pending']} entries; the survivors "
            f"reclaimed {story['reclaimed']} and nothing is pending under its name any more."
        )
    return f"Stopped watching: {KILL_TARGET} is {story['status']}, {story['pending_now']} pending."
