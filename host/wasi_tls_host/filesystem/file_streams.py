"""wasi:filesystem's streams: `read-via-stream`, `write-via-stream` and
`append-via-stream` over an open file.

Streams share the descriptor's file description (reference-counted), so a
stream keeps working after the guest drops its descriptor, as in wasmtime;
the host file descriptor is closed when the last of them is dropped.
Regular files never block; FIFOs and character devices opened beneath a
preopen are non-blocking and polled.
"""

from __future__ import annotations

import errno
import fcntl
import os
from stat import S_ISBLK, S_ISREG
from typing import NoReturn

from ..runtime.poll import NEVER, READ, WRITE, WaitSpec
from ..runtime.streams import (
    OUTPUT_BUDGET,
    InputStream,
    OutputStream,
    StreamClosed,
    StreamFailed,
    readable_now,
)
from .sandbox import Descriptor, SharedFd, error_code


def _seekable(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return True  # let the first read or write report the error
    return S_ISREG(mode) or S_ISBLK(mode)


class _OpenFile:
    """What both file streams hold: a share of the open file, whether it
    seeks (a regular file or block device) or is polled, and whether the
    stream has ended (at end of file, or closed by a failure)."""

    def __init__(self, desc: Descriptor):
        self._handle: SharedFd | None = desc.share()
        self._seekable = _seekable(self._handle.fd)
        self._done = False

    def _open_fd(self) -> int:
        """The file's descriptor, unless the stream has ended or was dropped."""
        if self._handle is None or self._done:
            raise StreamClosed()
        return self._handle.fd

    def close(self) -> None:
        if self._handle is not None:
            self._handle.release()
            self._handle = None


class FileInputStream(_OpenFile, InputStream):
    """Reads a file from an offset that advances; FIFOs and devices are polled."""

    def __init__(self, desc: Descriptor, offset: int):
        super().__init__(desc)
        self.offset = offset

    def read(self, max_bytes: int) -> bytes:
        fd = self._open_fd()
        if max_bytes == 0:
            return b""
        try:
            if self._seekable:
                data = os.pread(fd, max_bytes, self.offset)
            else:
                data = os.read(fd, max_bytes)
        except BlockingIOError:
            return b""
        except OSError as error:
            self._done = True
            raise StreamFailed(f"read failed: {error.strerror or error}",
                               filesystem_code=error_code(error)) from None
        except OverflowError:
            self._done = True
            raise StreamFailed("read failed: offset out of range",
                               filesystem_code="invalid") from None
        if not data:
            self._done = True
            raise StreamClosed()
        self.offset += len(data)
        return data

    def ready(self) -> bool:
        if self._handle is None or self._done or self._seekable:
            return True
        return readable_now(self._handle.fd)

    def wait_on(self) -> WaitSpec:
        if self._handle is None or self._done or self._seekable:
            return NEVER
        return WaitSpec(fds=((self._handle.fd, READ),))


class FileOutputStream(_OpenFile, OutputStream):
    """Writes at an offset that advances, or appends when `offset` is None.

    Writes to regular files complete at once. A FIFO or device takes what it
    can; the rest waits in a buffer and `check-write` says 0 until it drains.
    """

    def __init__(self, desc: Descriptor, offset: int | None):
        super().__init__(desc)
        self.offset = offset
        self._pending = bytearray()

    def check_write(self) -> int:
        fd = self._open_fd()
        if not self._seekable:
            self._drain(fd)
            if self._pending:
                return 0
        return OUTPUT_BUDGET

    def write(self, data: bytes) -> None:
        fd = self._open_fd()
        if not self._seekable:
            self._pending += data
            self._drain(fd)
            return
        view = memoryview(data)
        try:
            while view:
                if self.offset is None:
                    written = _append(fd, view)
                else:
                    written = os.pwrite(fd, view, self.offset)
                    self.offset += written
                view = view[written:]
        except OSError as error:
            self._fail(error)
        except OverflowError:
            self._done = True
            raise StreamFailed("write failed: offset out of range",
                               filesystem_code="invalid") from None

    def flush(self) -> None:
        fd = self._open_fd()
        if not self._seekable:
            self._drain(fd)

    def wait_on(self) -> WaitSpec:
        if self._handle is None or self._done or not self._pending:
            return NEVER
        return WaitSpec(fds=((self._handle.fd, WRITE),))

    def _drain(self, fd: int) -> None:
        while self._pending:
            try:
                written = os.write(fd, self._pending)
            except BlockingIOError:
                return
            except BrokenPipeError:
                self._done = True
                raise StreamClosed() from None
            except OSError as error:
                self._fail(error)
            del self._pending[:written]

    def _fail(self, error: OSError) -> NoReturn:
        self._done = True  # after a failure the stream is closed
        raise StreamFailed(f"write failed: {error.strerror or error}",
                           filesystem_code=error_code(error)) from None


def _append(fd: int, data: memoryview) -> int:
    """Write at the end of the file without moving anyone's offset."""
    if hasattr(os, "RWF_APPEND"):
        try:
            return os.pwritev(fd, [data], 0, os.RWF_APPEND)
        except OSError as error:
            if error.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_APPEND)
    try:
        return os.write(fd, data)
    finally:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)
