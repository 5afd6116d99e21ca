"""The poll loop: mixed waitables, far deadlines, and the never-ready case."""

import socket
import time

import pytest

from wasi_tls_host.runtime.errors import Trap
from wasi_tls_host.runtime.poll import NEVER, READ, Deadline, WaitSpec, wait_any

DAY_NS = 86_400 * 10**9


class AlwaysReady:
    def ready(self):
        return True

    def wait_on(self):
        return NEVER


class Readable:
    """Ready once its socket has data; the socket is the only thing to wait on."""

    def __init__(self, sock):
        self.sock = sock

    def ready(self):
        try:
            return bool(self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except BlockingIOError:
            return False

    def wait_on(self):
        return WaitSpec(fds=((self.sock.fileno(), READ),))


def test_a_timer_months_away_does_not_break_the_wait():
    left, right = socket.socketpair()
    far = Deadline(time.monotonic_ns, time.monotonic_ns() + 60 * DAY_NS)
    right.send(b"x")
    assert wait_any(time.monotonic_ns, [far, Readable(left)]) == [1]
    left.close()
    right.close()


def test_nearest_deadline_wins_and_duplicates_are_reported_at_each_index():
    soon = Deadline(time.monotonic_ns, time.monotonic_ns() + 20_000_000)
    later = Deadline(time.monotonic_ns, time.monotonic_ns() + DAY_NS)
    started = time.monotonic()
    assert wait_any(time.monotonic_ns, [later, soon, soon]) == [1, 2]
    assert 0.015 < time.monotonic() - started < 2


def test_ready_waitables_return_at_once():
    assert wait_any(time.monotonic_ns, [AlwaysReady()]) == [0]


def test_nothing_that_could_ever_become_ready_is_a_trap():
    class Stuck:
        def ready(self):
            return False

        def wait_on(self):
            return WaitSpec()
    with pytest.raises(Trap, match="block forever"):
        wait_any(time.monotonic_ns, [Stuck()])
