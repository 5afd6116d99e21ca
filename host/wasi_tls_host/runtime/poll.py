"""Readiness: what a pollable waits for, and the one place the host blocks.

Everything that can be polled (streams, sockets, timers, TLS futures) is a
`Waitable`: `ready()` checks without blocking (and may make progress, such
as pumping TLS records), and `wait_on()` says which file descriptors and
which deadline could change that answer. `wait_any` blocks on all of them at
once with `select.poll`, so no host call blocks except `poll` and the
`blocking-*` functions, which are built on it.
"""

from __future__ import annotations

import math
import select
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from .errors import Trap

READ = select.POLLIN
WRITE = select.POLLOUT


@dataclass(frozen=True)
class WaitSpec:
    fds: tuple[tuple[int, int], ...] = ()
    deadline_ns: int | None = None


NEVER = WaitSpec()


class Waitable(Protocol):
    def ready(self) -> bool: ...

    def wait_on(self) -> WaitSpec: ...


class Pollable:
    """The `pollable` resource: a handle on a waitable."""

    def __init__(self, waitable: Waitable):
        self.waitable = waitable


class AlwaysReady:
    def ready(self) -> bool:
        return True

    def wait_on(self) -> WaitSpec:
        return NEVER


class Deadline:
    """Ready once the monotonic clock reaches `deadline_ns`."""

    def __init__(self, now_ns: Callable[[], int], deadline_ns: int):
        self.now_ns = now_ns
        self.deadline_ns = deadline_ns

    def ready(self) -> bool:
        return self.now_ns() >= self.deadline_ns

    def wait_on(self) -> WaitSpec:
        return WaitSpec(deadline_ns=self.deadline_ns)


def wait_any(now_ns: Callable[[], int], waitables: Sequence[Waitable]) -> list[int]:
    """Block until at least one waitable is ready; return the ready indexes."""
    while True:
        ready = [index for index, waitable in enumerate(waitables) if waitable.ready()]
        if ready:
            return ready
        masks: dict[int, int] = {}
        deadline: int | None = None
        for waitable in waitables:
            spec = waitable.wait_on()
            for fd, events in spec.fds:
                masks[fd] = masks.get(fd, 0) | events
            if spec.deadline_ns is not None:
                deadline = spec.deadline_ns if deadline is None else min(deadline, spec.deadline_ns)
        if not masks and deadline is None:
            raise Trap("poll would block forever: none of the pollables can become ready")
        poller = select.poll()
        for fd, events in masks.items():
            poller.register(fd, events)
        timeout_ms = None
        if deadline is not None:
            timeout_ms = max(0, math.ceil((deadline - now_ns()) / 1_000_000))
        poller.poll(timeout_ms)


def wait_for(now_ns: Callable[[], int], waitable: Waitable) -> None:
    wait_any(now_ns, (waitable,))
