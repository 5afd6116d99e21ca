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
import threading
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


def earliest(*deadlines_ns: int | None) -> int | None:
    """The soonest of the deadlines that are set (None when none is)."""
    return min((ns for ns in deadlines_ns if ns is not None), default=None)


class Waitable(Protocol):
    def ready(self) -> bool: ...

    def wait_on(self) -> WaitSpec: ...


class Pollable:
    """The `pollable` resource: a handle on a waitable."""

    __slots__ = ("waitable",)

    def __init__(self, waitable: Waitable):
        self.waitable = waitable


class Deadline:
    """Ready once the monotonic clock reaches `deadline_ns`."""

    __slots__ = ("deadline_ns", "now_ns")

    def __init__(self, now_ns: Callable[[], int], deadline_ns: int):
        self.now_ns = now_ns
        self.deadline_ns = deadline_ns

    def ready(self) -> bool:
        return self.now_ns() >= self.deadline_ns

    def wait_on(self) -> WaitSpec:
        return WaitSpec(deadline_ns=self.deadline_ns)


class StopSwitch:
    """Ends one guest run, from any thread: `GuestRun.stop()`, the run's time
    limit, or Ctrl-C. The first `request` names the reason; later ones are
    ignored.

    `drain` (SIGTERM, `GuestRun.drain`) asks for a gentler end first: the
    guest's next wait wakes and runs the `on_drain` actions on the guest's
    thread (the guest's listeners close, so its servers stop accepting),
    and a stop follows after a grace period unless the guest ends first.

    A guest is either waiting in a host call or computing. Every wait of the
    guest watches the switch's pipe, which `request` writes to, so a wait
    ends at once; `wake` (the engine's epoch increment) reaches the guest's
    code, where the store's epoch callback sees `reason` and traps. Other
    guests on the same engine pass the callback and go on.
    """

    def __init__(self, wake: Callable[[], None] = lambda: None):
        self.reason: str | None = None
        self._wake = wake
        # Non-blocking: a full pipe already holds a wake-up (one call, not three).
        self.read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._write_fd: int | None = write_fd  # None once closed
        # Reentrant: a signal handler may request while its thread closes.
        self._lock = threading.RLock()
        self._timers: list[threading.Timer] = []
        self.draining = False
        self._drained = False
        #: Called once on the guest's thread, at its first wait after `drain`.
        self.on_drain: list[Callable[[], None]] = []

    def request(self, reason: str) -> None:
        with self._lock:
            if self.reason is None:
                self.reason = reason
            if self._write_fd is None:
                return  # the run is over: nothing to wake
            self._wake()  # the computing guest first: a waiting one may end at the poke
            self._poke()

    def _poke(self) -> None:
        """Wake the guest's wait (the caller holds the lock)."""
        if self._write_fd is None:
            return  # the run is over
        try:
            os.write(self._write_fd, b"!")
        except BlockingIOError:
            pass  # a wake-up is already pending

    def request_after(self, seconds: float, reason: str) -> None:
        """Request a stop for `reason` once `seconds` have passed."""
        timer = threading.Timer(seconds, self.request, (reason,))
        timer.daemon = True
        with self._lock:
            self._timers.append(timer)
        timer.start()

    def drain(self, grace: float) -> None:
        """Start draining (see the class doc), and stop the guest for
        "grace" once `grace` seconds have passed; only the first call counts."""
        with self._lock:
            if self.draining:
                return
            self.draining = True
            self._poke()
        self.request_after(grace, "grace")

    def check(self) -> None:
        """On the guest's thread, in every wait: run the drain's actions
        once it was asked for; raise Interrupted once a stop was."""
        if self.draining and not self._drained:
            self._drained = True
            with self._lock:
                if self._write_fd is not None:
                    try:
                        os.read(self.read_fd, 64)  # the drain's wake-up, seen
                    except BlockingIOError:
                        pass
            for action in self.on_drain:
                action()
        if self.reason is not None:  # after the read: a stop's wake-up may be gone
            raise Interrupted(self.reason)

    def close(self) -> None:
        """Release the pipe and the timers; later requests only set `reason`."""
        with self._lock:
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()
        with self._lock:
            if self._write_fd is not None:
                # Forgotten before it is closed: a signal handler may run in between.
                write_fd, self._write_fd = self._write_fd, None
                os.close(write_fd)
                os.close(self.read_fd)


def wait_any(now_ns: Callable[[], int], waitables: Sequence[Waitable],
             lingering: list[Waitable] | None = None,
             stop: StopSwitch | None = None) -> list[int]:
    """Block until at least one waitable is ready; return the ready indexes.

    `lingering` is work left behind by dropped resources (a TLS goodbye still
    being sent): it makes progress on every turn and its waits are watched
    too, but it never counts as ready; finished work is removed from the list.
    A request on `stop` ends the wait with `Interrupted`.
    """
    while True:
        if stop is not None:
            stop.check()
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
            deadline = earliest(deadline, spec.deadline_ns)
        if not masks and deadline is None:
            raise Trap("poll would block forever: none of the pollables can become ready")
        if stop is not None:
            masks[stop.read_fd] = READ
        poller = select.poll()
        for fd, events in masks.items():
            poller.register(fd, events)
        timeout_ms = None
        if deadline is not None:
            # poll() takes a C int; a farther deadline is simply re-checked.
            timeout_ms = min(MAX_TIMEOUT_MS, max(0, math.ceil((deadline - now_ns()) / 1_000_000)))
        poller.poll(timeout_ms)


def finish_lingering(now_ns: Callable[[], int], lingering: list[Waitable],
                     timeout_ns: int, stop: StopSwitch | None = None) -> None:
    """Give lingering work up to `timeout_ns` to finish (when the store ends)."""
    until = Deadline(now_ns, now_ns() + timeout_ns)
    done_or_late = _Either(until, lingering)
    wait_any(now_ns, (done_or_late,), lingering, stop)


class _Either:
    """Ready at a deadline or once the lingering work is all done."""

    def __init__(self, deadline: Deadline, lingering: list[Waitable]):
        self.deadline = deadline
        self.lingering = lingering

    def ready(self) -> bool:
        return not self.lingering or self.deadline.ready()

    def wait_on(self) -> WaitSpec:
        return self.deadline.wait_on()
