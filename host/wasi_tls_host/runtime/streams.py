"""Host-side byte streams behind `wasi:io/streams`.

Any stream here can back a guest's `input-stream`/`output-stream`, and any
of them can be the transport under TLS. All operations are non-blocking;
waiting is done by the poll loop through `ready()`/`wait_on()`.

Input: `read(n)` returns up to n bytes, `b""` when nothing is available yet,
and raises `StreamClosed` at end of stream or `StreamFailed` on error;
`read(0)` consumes nothing but still raises once the end has been seen.

Output: `check_write()` is how many bytes may be written now (0 while full
or while a requested flush is still in progress); `write(data)` accepts at
most that many; `flush()` asks for buffered bytes to be sent. Both raise the
same two exceptions.
"""

from __future__ import annotations

import fcntl
import os
import select
import socket
import stat
import struct
import termios
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from .poll import NEVER, READ, WRITE, Waitable, WaitSpec

#: How much an output stream buffers before `check-write` says 0.
OUTPUT_BUDGET = 64 * 1024


class StreamClosed(Exception):
    """End of stream (input) or the stream is no longer writable (output)."""


class StreamFailed(Exception):
    """The last operation failed; the message goes into an `error` resource."""

    def __init__(self, message: str, *, network_code: str | None = None,
                 filesystem_code: str | None = None):
        super().__init__(message)
        self.message = message
        self.network_code = network_code
        self.filesystem_code = filesystem_code


class InputStream:
    def read(self, max_bytes: int) -> bytes:
        raise NotImplementedError

    def ready(self) -> bool:
        return True

    def wait_on(self) -> WaitSpec:
        return NEVER

    def peer_address(self) -> object:
        """The far end's address when this stream reads a connected socket
        (TLS matches resumed sessions by it), else None."""
        return None

    def close(self) -> None:
        pass


class OutputStream:
    #: What the guest's last `check-write` allowed and it has not yet written.
    permit = 0

    def check_write(self) -> int:
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        pass

    def ready(self) -> bool:
        try:
            return self.check_write() > 0
        except (StreamClosed, StreamFailed):
            return True

    def wait_on(self) -> WaitSpec:
        return NEVER

    def leftover(self) -> Waitable | None:
        """Delivery still owed when the store ends (waited on like other
        lingering work, a stop excepted), or None."""
        return None

    def close(self) -> None:
        pass


class Pipe:
    """An in-memory one-way pipe with a bounded buffer: `.input` and `.output`."""

    def __init__(self, capacity: int = OUTPUT_BUDGET):
        self.buffer = bytearray()
        self.capacity = capacity
        self.writer_closed = False
        self.reader_closed = False
        self.input = _PipeInput(self)
        self.output = _PipeOutput(self)


class _PipeInput(InputStream):
    def __init__(self, pipe: Pipe):
        self.pipe = pipe

    def read(self, max_bytes: int) -> bytes:
        pipe = self.pipe
        if not pipe.buffer:
            if pipe.writer_closed:
                raise StreamClosed()
            return b""
        data = bytes(pipe.buffer[:max_bytes])
        del pipe.buffer[:max_bytes]
        return data

    def ready(self) -> bool:
        return bool(self.pipe.buffer) or self.pipe.writer_closed

    def close(self) -> None:
        self.pipe.reader_closed = True


class _PipeOutput(OutputStream):
    def __init__(self, pipe: Pipe):
        self.pipe = pipe

    def check_write(self) -> int:
        pipe = self.pipe
        if pipe.reader_closed or pipe.writer_closed:
            raise StreamClosed()
        return pipe.capacity - len(pipe.buffer)

    def write(self, data: bytes) -> None:
        if self.pipe.reader_closed:
            raise StreamClosed()
        self.pipe.buffer += data

    def close(self) -> None:
        self.pipe.writer_closed = True


class FileInput(InputStream):
    """Reads a host file object; a pipe or terminal is polled, a regular file is always ready."""

    def __init__(self, file: BinaryIO):
        self.file = file
        self.fd = _pollable_fd(file)
        self.ended = False

    def read(self, max_bytes: int) -> bytes:
        if self.ended:
            raise StreamClosed()
        if max_bytes == 0:
            return b""
        try:
            if self.fd is not None:
                # Leave the fd's blocking mode alone (it is shared with the
                # parent's terminal); read only what poll says is there.
                if not readable_now(self.fd):
                    return b""
                data = os.read(self.fd, max_bytes)
            else:
                data = self.file.read(max_bytes)
        except OSError as error:
            raise StreamFailed(f"read failed: {error.strerror or error}") from None
        except ValueError:  # the embedder closed the file
            raise StreamClosed() from None
        if not data:
            self.ended = True
            raise StreamClosed()
        return data

    def ready(self) -> bool:
        return self.fd is None or readable_now(self.fd)

    def wait_on(self) -> WaitSpec:
        return WaitSpec(fds=((self.fd, READ),)) if self.fd is not None else NEVER


class FileOutput(OutputStream):
    """Writes to a host file object (the process's stdout or stderr, or
    whatever binary file an embedder passes in the config). The file stays open.

    A regular file or an in-memory one is written through the file object:
    it never keeps a writer waiting. A pipe or a terminal can be full, and
    a blocking write to it would stop the whole host, while its fd's
    blocking mode belongs to the file description it shares with the parent
    (and sys.stdout.buffer would pass on more than was granted). So its
    bytes go through a non-blocking description of our own of the same
    pipe or terminal (`_reopen_nonblocking`); a socket (journald's, under
    systemd) cannot be reopened, so its bytes are sent on a duplicate of
    its fd with MSG_DONTWAIT, which leaves the shared description's mode
    alone too. `check-write` grants what
    the fd takes now: nothing until poll says writable, then PIPE_BUF (poll
    on a pipe means a page is free), and on a pipe its free room up to the
    budget. The room is an estimate (a page may be partly used) and another
    writer may get there first, so what the fd does not take waits in
    `pending`, and `check-write` grants nothing more until it has gone out.
    """

    def __init__(self, file: BinaryIO):
        self.file = file
        self.failed: StreamFailed | None = None
        #: A socket's bytes go out through `send` with MSG_DONTWAIT (None: no socket).
        self.socket: socket.socket | None = None
        self.fd: int | None = None
        #: A pipe's capacity (None if it is no pipe), read once: only
        #: F_SETPIPE_SZ changes it, and should anyone do so, the room is an
        #: estimate anyway (what the fd does not take waits in `pending`).
        self.pipe_size: int | None = None
        shared = _pollable_fd(file)
        if shared is not None:
            mode = os.fstat(shared).st_mode
            if stat.S_ISSOCK(mode):
                self.socket = _duplicate_socket(file, shared)
                self.fd = self.socket.fileno() if self.socket is not None else None
            else:
                self.fd = _reopen_nonblocking(file, shared)
                if self.fd is not None and stat.S_ISFIFO(mode):
                    self.pipe_size = fcntl.fcntl(self.fd, fcntl.F_GETPIPE_SZ)
        #: Bytes written and granted but not yet taken by `fd`.
        self.pending = b""

    def check_write(self) -> int:
        self._check_usable()
        if self.fd is None:
            return OUTPUT_BUDGET
        self._send_pending()
        if self.pending or not writable_now(self.fd):
            return 0
        if self.pipe_size is None:
            return select.PIPE_BUF
        queued = struct.unpack("i", fcntl.ioctl(self.fd, termios.FIONREAD, b"\0" * 4))[0]
        room = self.pipe_size - queued
        # At least a page is free when poll says writable, or the reader is
        # gone (POLLERR) and the write will say closed.
        return max(select.PIPE_BUF, min(OUTPUT_BUDGET, room))

    def write(self, data: bytes) -> None:
        self._check_usable()
        if self.fd is None:
            with self._failures("write"):
                self.file.write(data)
        else:
            self.pending += data
            self._send_pending()

    def flush(self) -> None:
        self._check_usable()
        if self.fd is None:
            with self._failures("flush"):
                self.file.flush()
        else:
            self._send_pending()

    def wait_on(self) -> WaitSpec:
        return WaitSpec(fds=((self.fd, WRITE),)) if self.fd is not None else NEVER

    def leftover(self) -> Waitable | None:
        """Bytes a guest wrote without waiting for them to go out: the run's
        end gives them the time it gives other lingering work."""
        return _Delivery(self) if self.fd is not None and self.pending else None

    def close(self) -> None:
        """Flush what can go without waiting and drop the rest: by now the
        run's end has waited for it (`leftover`) as long as it waits."""
        if self.fd is None:
            try:
                self.file.flush()
            except (OSError, ValueError):
                pass
            return
        try:
            self._send_pending()
        except (StreamClosed, StreamFailed):
            pass
        if self.socket is not None:
            self.socket.close()
        else:
            os.close(self.fd)
        self.fd, self.socket, self.pending = None, None, b""

    def _check_usable(self) -> None:
        if self.failed:
            raise self.failed
        if self.file.closed:
            raise StreamClosed()

    def _send_pending(self) -> None:
        assert self.fd is not None
        with self._failures("write"):
            while self.pending:
                try:
                    sent = (self.socket.send(self.pending, socket.MSG_DONTWAIT)
                            if self.socket is not None else os.write(self.fd, self.pending))
                except BlockingIOError:
                    return
                self.pending = self.pending[sent:]

    @contextmanager
    def _failures(self, operation: str) -> Iterator[None]:
        """A closed pipe or file is `closed`; another OSError fails the stream for good."""
        try:
            yield
        except (BrokenPipeError, ValueError):  # ValueError: the embedder closed the file
            raise StreamClosed() from None
        except OSError as error:
            self.failed = StreamFailed(f"{operation} failed: {error.strerror or error}")
            raise self.failed from None


class _Delivery:
    """A FileOutput's pending bytes going out as the store ends."""

    def __init__(self, output: FileOutput):
        self.output = output

    def ready(self) -> bool:
        try:
            self.output._send_pending()
        except (StreamClosed, StreamFailed):
            return True  # nobody left to deliver to
        return not self.output.pending

    def wait_on(self) -> WaitSpec:
        return self.output.wait_on()

    def close(self) -> None:
        pass  # the stream's own close drops what is left


def _duplicate_socket(file: BinaryIO, fd: int) -> socket.socket | None:
    """A socket on a duplicate of `fd` (`file`'s) when that is a stream
    socket, after what `file` still buffers; None otherwise."""
    try:
        file.flush()  # the embedder's bytes come first
        copy = os.dup(fd)
    except (OSError, ValueError):
        return None
    try:
        duplicate = socket.socket(fileno=copy)
    except OSError:
        os.close(copy)
        return None
    if duplicate.type != socket.SOCK_STREAM:  # a datagram's bounds are not ours to cut
        duplicate.close()
        return None
    return duplicate


def _reopen_nonblocking(file: BinaryIO, fd: int) -> int | None:
    """A non-blocking description of our own of the pipe or terminal `fd`
    (`file`'s), after what `file` still buffers; None where Linux cannot
    reopen it (a pipe of another user's, a pipe whose reader is gone),
    which is then written through `file` (and a write can block)."""
    try:
        file.flush()  # the embedder's bytes come first
        return os.open(f"/proc/self/fd/{fd}",
                       os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except (OSError, ValueError):
        return None


def _pollable_fd(file: BinaryIO) -> int | None:
    """The fd to poll, or None for sources that never block (regular files, memory)."""
    try:
        fd = file.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    mode = os.fstat(fd).st_mode
    return None if stat.S_ISREG(mode) else fd


def ready_now(fd: int, events: int) -> bool:
    """Whether `fd` is ready for `events` right now, without blocking."""
    poller = select.poll()
    poller.register(fd, events)
    return bool(poller.poll(0))


def readable_now(fd: int) -> bool:
    return ready_now(fd, READ)


def writable_now(fd: int) -> bool:
    return ready_now(fd, WRITE)
