"""Work that outlives the host call that started it.

Dropping a TCP output stream must not block the guest, yet what the guest
wrote must still reach the peer: the unsent bytes are handed to the one
daemon thread that sends for every dropped stream (`sockets.tcp`,
`DELIVERIES`). `ctx.close()` gives such threads a
bounded time to finish before the process may exit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

_running: set[threading.Thread] = set()
_lock = threading.Lock()


def start(work: Callable[[], None], name: str) -> None:
    def run() -> None:
        try:
            work()
        finally:
            with _lock:
                _running.discard(thread)

    thread = threading.Thread(target=run, name=name, daemon=True)
    with _lock:
        _running.add(thread)
    thread.start()


def wait_all(timeout_s: float) -> None:
    """Wait up to `timeout_s` in total for background work to finish."""
    deadline = time.monotonic() + timeout_s
    while True:
        with _lock:
            threads = list(_running)
        if not threads:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        threads[0].join(remaining)
