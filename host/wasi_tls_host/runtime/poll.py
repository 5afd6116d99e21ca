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
import os
import select
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from .errors import Interrupted, Trap

#: The largest timeout select.poll accepts.
MAX_TIMEOUT_MS = 2**31 - 1

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


class Deadline:
    """Ready once the monotonic clock reaches `deadline_ns`."""

    def __init__(self, now_ns: Callable[[], int], deadline_ns: int):
        self.now_ns = now_ns
        self.deadline_ns = deadline_ns

    def ready(self) -> bool:
        return self.now_ns() >= self.deadline_ns

    def wait_on(self) -> WaitSpec:
        return WaitSpec(deadline_ns=self.deadline_ns)


class InterruptSwitch:
    """Lets a signal handler wake every wait: it sets `requested` and writes
    to a pipe that `wait_any` always watches while the switch is armed."""

    def __init__(self) -> None:
        self.requested = False
        self.read_fd: int | None = None
        self.write_fd: int | None = None

    def arm(self) -> None:
        if self.read_fd is None:
            self.read_fd, self.write_fd = os.pipe()
            os.set_blocking(self.write_fd, False)
        self.requested = False

    def request(self) -> None:
        """Async-signal-safe enough for a Python signal handler."""
        self.requested = True
        if self.write_fd is not None:
            try:
                os.write(self.write_fd, b"!")
            except BlockingIOError:
                pass  # a wake-up is already pending


#: The process-wide switch `Host.run` connects to SIGINT.
INTERRUPTS = InterruptSwitch()


def wait_any(now_ns: Callable[[], int], waitables: Sequence[Waitable],
             lingering: list[Waitable] | None = None) -> list[int]:
    """Block until at least one waitable is ready; return the ready indexes.

    `lingering` is work left behind by dropped resources (a TLS goodbye still
    being sent): it makes progress on every turn and its waits are watched
    too, but it never counts as ready; finished work is removed from the list.
    """
    while True:
        if INTERRUPTS.requested:
            raise Interrupted()
        if lingering:
            lingering[:] = [work for work in lingering if not work.ready()]
        ready = [index for index, waitable in enumerate(waitables) if waitable.ready()]
        if ready:
            return ready
        masks: dict[int, int] = {}
        deadline: int | None = None
        for waitable in (*waitables, *(lingering or ())):
            spec = waitable.wait_on()
            for fd, events in spec.fds:
                masks[fd] = masks.get(fd, 0) | events
            if spec.deadline_ns is not None:
                deadline = spec.deadline_ns if deadline is None else min(deadline, spec.deadline_ns)
        if not masks and deadline is None:
            raise Trap("poll would block forever: none of the pollables can become ready")
        if INTERRUPTS.read_fd is not None:
            masks[INTERRUPTS.read_fd] = READ
        poller = select.poll()
        for fd, events in masks.items():
            poller.register(fd, events)
        timeout_ms = None
        if deadline is not None:
            # poll() takes a C int; a farther deadline is simply re-checked.
            timeout_ms = min(MAX_TIMEOUT_MS, max(0, math.ceil((deadline - now_ns()) / 1_000_000)))
        poller.poll(timeout_ms)


def finish_lingering(now_ns: Callable[[], int], lingering: list[Waitable],
                     timeout_ns: int) -> None:
    """Give lingering work up to `timeout_ns` to finish (when the store ends)."""
    until = Deadline(now_ns, now_ns() + timeout_ns)
    done_or_late = _Either(until, lingering)
    wait_any(now_ns, (done_or_late,), lingering)


class _Either:
    """Ready at a deadline or once the lingering work is all done."""

    def __init__(self, deadline: Deadline, lingering: list[Waitable]):
        self.deadline = deadline
        self.lingering = lingering

    def ready(self) -> bool:
        return not self.lingering or self.deadline.ready()

    def wait_on(self) -> WaitSpec:
        return self.deadline.wait_on()
