"""Run a coroutine in a fresh event loop on its own thread.

Playwright's sync API (the browser tests' session fixture) keeps an event loop
running on the main thread, where ``asyncio.run`` refuses to start another.
"""

import asyncio
import threading


def run_fresh(main):
    """``asyncio.run(main())`` on a new thread; returns its result or raises its error."""
    outcome = {}

    def target():
        try:
            outcome["value"] = asyncio.run(main())
        except BaseException as exc:  # re-raised on the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="asyncio-test")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")
