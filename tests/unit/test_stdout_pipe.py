"""stdout into a pipe, terminal or socket that nobody reads blocks no one.

wasi:io lets only `poll` and the `blocking-*` calls wait. A guest's stdout
is often a pipe (or a terminal, or a socket) whose reader may stop reading: `check-write`
must then grant nothing, `write` must return at once, and the stream's
pollable must wait in `poll` until the reader drains, so that the host's
other work (a timer here, other guests in a server) goes on. Each host side
is a BufferedWriter over the fd, as sys.stdout.buffer is.
"""

from __future__ import annotations

import fcntl
import io
import os
import select
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import pytest

from wasi_tls_host.clocks import monotonic_clock
from wasi_tls_host.config import HostConfig
from wasi_tls_host.io import poll, streams
from wasi_tls_host.runtime.context import WasiCtx
from wasi_tls_host.runtime.errors import Interrupted
from wasi_tls_host.runtime.poll import StopSwitch
from wasi_tls_host.runtime.streams import OUTPUT_BUDGET

T = TypeVar("T")


@dataclass
class Unread:
    """The writing end handed to the host, and the reading end nobody reads yet."""

    writer: io.BufferedWriter
    read_fd: int

    def receive(self, size: int) -> bytes:
        """Read `size` bytes, waiting for them (a terminal passes them on
        asynchronously), and fail after 10 s without any. A terminal writes
        each newline as \\r\\n (ONLCR), which comes back as \\n."""
        received = b""
        while len(received) < size:
            readable, _, _ = select.select([self.read_fd], [], [], 10)
            assert readable, f"{len(received)} of {size} bytes arrived"
            received = (received + os.read(self.read_fd, 1 << 16)).replace(b"\r\n", b"\n")
        return received


def stream_socket_pair() -> tuple[int, int]:
    return tuple(end.detach() for end in socket.socketpair())  # type: ignore[return-value]


@pytest.fixture(params=[os.pipe, os.openpty, stream_socket_pair],
                ids=["pipe", "terminal", "socket"])
def unread(request) -> Iterator[Unread]:
    """A pipe, a pseudo-terminal (the guest writes to its slave), or a
    stream socket (journald's stdout under systemd)."""
    read_fd, write_fd = request.param()
    os.set_blocking(read_fd, False)
    writer = open(write_fd, "wb")  # noqa: SIM115 - closed below
    yield Unread(writer, read_fd)
    os.close(read_fd)  # a write the old code blocked in ends (EPIPE or EIO)
    try:
        writer.close()
    except OSError:
        pass


def within(seconds: float, work: Callable[[], T]) -> T:
    """`work()`'s result, or a failure if it has not returned in `seconds`."""
    outcome: list[T] = []
    thread = threading.Thread(target=lambda: outcome.append(work()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the host blocked"
    assert outcome, "the work raised (see the thread's exception above)"
    return outcome[0]


def fill(ctx: WasiCtx) -> int:
    """Write to stdout as a guest does, as long as check-write grants anything."""
    written = 0
    while permit := streams.check_write(ctx, ctx.stdout):
        streams.write(ctx, ctx.stdout, b"x" * permit)
        written += permit
    return written


def test_a_full_stdout_grants_nothing_and_poll_waits_for_the_reader(unread):
    ctx = WasiCtx(HostConfig(stdout=unread.writer))
    written = within(10, lambda: fill(ctx))
    assert written > 0
    writable = streams.subscribe_output(ctx, ctx.stdout).obj
    timer = monotonic_clock.subscribe_duration(ctx, 50_000_000)
    # The host waits in poll, not in a write: the timer's turn comes.
    assert within(10, lambda: poll.poll(ctx, [writable, timer])) == [1]
    assert poll.ready(ctx, writable) is False
    assert streams.check_write(ctx, ctx.stdout) == 0
    # The reader drains: the pollable becomes ready (a terminal may take
    # less than was granted; the host passes the rest on meanwhile), and
    # nothing granted was lost.
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(unread.receive(written)))
    reader.start()
    assert within(10, lambda: poll.poll(ctx, [writable])) == [0]
    reader.join(10)
    assert received == [b"x" * written]
    assert streams.check_write(ctx, ctx.stdout) > 0
    ctx.close()


def test_a_pipe_is_granted_what_it_has_room_for():
    """Not the whole budget at once: the room left, as the pipe fills."""
    read_fd, write_fd = os.pipe()
    page = os.sysconf("SC_PAGE_SIZE")
    size = max(2 * page, OUTPUT_BUDGET // 2)
    fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, size)
    writer = open(write_fd, "wb")  # noqa: SIM115 - closed below
    ctx = WasiCtx(HostConfig(stdout=writer))
    assert streams.check_write(ctx, ctx.stdout) == size
    streams.write(ctx, ctx.stdout, bytes(size - page))
    assert streams.check_write(ctx, ctx.stdout) == page
    ctx.close()
    writer.close()
    os.close(read_fd)


def test_a_pipes_capacity_is_read_once_when_the_stream_opens(monkeypatch):
    """Only F_SETPIPE_SZ changes it: check-write does not ask again."""
    asked: list[int] = []
    real_fcntl = fcntl.fcntl

    def counting(fd, command, *args):
        if command == fcntl.F_GETPIPE_SZ:
            asked.append(fd)
        return real_fcntl(fd, command, *args)

    monkeypatch.setattr(fcntl, "fcntl", counting)
    read_fd, write_fd = os.pipe()
    writer = open(write_fd, "wb")  # noqa: SIM115 - closed below
    ctx = WasiCtx(HostConfig(stdout=writer, stderr=io.BytesIO()))
    for _ in range(3):
        streams.write(ctx, ctx.stdout, bytes(streams.check_write(ctx, ctx.stdout) // 4))
    assert asked == [ctx.stdout.fd]  # type: ignore[attr-defined]
    ctx.close()
    writer.close()
    os.close(read_fd)


def test_blocking_write_and_flush_waits_for_the_reader(unread):
    ctx = WasiCtx(HostConfig(stdout=unread.writer))
    written = within(10, lambda: fill(ctx))
    finished = threading.Event()

    def blocking_write() -> None:
        streams.blocking_write_and_flush(ctx, ctx.stdout, b"last line\n")
        finished.set()

    writer = threading.Thread(target=blocking_write, daemon=True)
    writer.start()
    assert not finished.wait(0.2), "blocking-write-and-flush did not wait for room"
    received = unread.receive(written + len(b"last line\n"))
    assert received == b"x" * written + b"last line\n"
    assert finished.wait(10)
    ctx.close()


def test_a_stop_ends_a_blocking_write_to_a_full_stdout(unread):
    """The wait is poll's, so a guest's time limit still ends it."""
    ctx = WasiCtx(HostConfig(stdout=unread.writer))
    ctx.stop = StopSwitch()
    within(10, lambda: fill(ctx))
    ctx.stop.request_after(0.2, "timeout")

    def blocking_write() -> str:
        with pytest.raises(Interrupted) as stopped:
            streams.blocking_write_and_flush(ctx, ctx.stdout, b"never read")
        return str(stopped.value)

    assert within(10, blocking_write) == "timeout"
    ctx.stop.close()
    ctx.close()


@pytest.mark.parametrize("kind", ["memory", "regular file"])
def test_files_that_never_block_still_get_the_whole_budget(kind, tmp_path):
    sink = io.BytesIO() if kind == "memory" else open(tmp_path / "out", "wb")  # noqa: SIM115
    ctx = WasiCtx(HostConfig(stdout=sink))
    for _ in range(4):  # more than a pipe holds, none of it waiting
        assert streams.check_write(ctx, ctx.stdout) == OUTPUT_BUDGET
        assert poll.ready(ctx, streams.subscribe_output(ctx, ctx.stdout).obj) is True
        streams.write(ctx, ctx.stdout, bytes(OUTPUT_BUDGET))
    streams.blocking_flush(ctx, ctx.stdout)
    ctx.close()
    if kind == "memory":
        assert len(sink.getvalue()) == 4 * OUTPUT_BUDGET
    else:
        sink.close()
        assert (tmp_path / "out").stat().st_size == 4 * OUTPUT_BUDGET


def test_the_parents_description_stays_blocking(unread):
    """The fd is shared with the parent (a shell's terminal): its mode is left alone."""
    ctx = WasiCtx(HostConfig(stdout=unread.writer))
    within(10, lambda: fill(ctx))
    assert os.get_blocking(unread.writer.fileno()) is True
    ctx.close()


def test_bytes_the_embedder_buffered_go_first(unread):
    unread.writer.write(b"host first\n")  # still in the BufferedWriter
    ctx = WasiCtx(HostConfig(stdout=unread.writer))
    streams.check_write(ctx, ctx.stdout)
    streams.write(ctx, ctx.stdout, b"guest second\n")
    ctx.close()
    assert unread.receive(len(b"host first\nguest second\n")) == b"host first\nguest second\n"


def left_pending(ctx: WasiCtx, unread: Unread) -> int:
    """A full stdout with bytes granted that the fd has not taken yet: a
    terminal (or a partly used page) takes less than the estimate, and a
    tail is added to whatever it left."""
    written = within(10, lambda: fill(ctx))
    ctx.stdout.pending += b"tail\n"  # type: ignore[attr-defined]
    return written


def test_the_runs_end_delivers_what_the_fd_had_not_taken_yet(unread):
    ctx = WasiCtx(HostConfig(stdout=unread.writer))
    written = left_pending(ctx, unread)
    received: list[bytes] = []

    def late_reader() -> None:
        threading.Event().wait(0.3)  # reads only once the run is ending
        received.append(unread.receive(written + len(b"tail\n")))

    reader = threading.Thread(target=late_reader)
    reader.start()
    within(10, ctx.close)
    reader.join(10)
    assert received == [b"x" * written + b"tail\n"]


def test_a_stopped_runs_end_does_not_wait_for_a_reader(unread):
    ctx = WasiCtx(HostConfig(stdout=unread.writer))
    ctx.stop = StopSwitch()
    left_pending(ctx, unread)
    ctx.stop.request("timeout")
    within(2, ctx.close)  # nobody reads: the tail is dropped, not waited for
    ctx.stop.close()


def test_a_datagram_socket_is_written_through_the_file():
    """Sending on a duplicate applies to stream sockets only: a datagram's
    bounds are the writer's, so one is written through the file as before."""
    reader, writer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with reader, open(writer.detach(), "wb") as sink:  # noqa: SIM115
        ctx = WasiCtx(HostConfig(stdout=sink))
        assert ctx.stdout.socket is None and ctx.stdout.fd is None  # type: ignore[attr-defined]
        assert streams.check_write(ctx, ctx.stdout) == OUTPUT_BUDGET
        streams.write(ctx, ctx.stdout, b"one datagram")
        streams.flush(ctx, ctx.stdout)
        assert reader.recv(64) == b"one datagram"
        ctx.close()
