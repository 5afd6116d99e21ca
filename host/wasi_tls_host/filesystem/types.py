"""wasi:filesystem/types: descriptors, path operations and file streams.

Sandbox
-------
Every path is relative to a directory descriptor and is resolved by the host
itself, one component at a time, with `O_NOFOLLOW` opens relative to the
directory reached so far (the approach of cap-std, which wasmtime uses):

* an absolute path, a `..` that would climb above the descriptor, and a
  symbolic link whose target is absolute or climbs above it all fail with
  `not-permitted`; the kernel never sees a `..` or a multi-component path;
* symbolic links are expanded by the host (at most 40 per lookup, then
  `loop`); the last component is followed only with `symlink-follow` (or a
  trailing `/`), and the final operation is always the no-follow variant, so
  a link swapped in behind the host's back is not followed either;
* the descriptor a call is made on is the root: a descriptor opened for a
  subdirectory cannot reach its parent with `..`, as in wasmtime.

Permissions (wasmtime's choices)
--------------------------------
* A read-only preopen (`Preopen.read_only`) and everything opened beneath it
  refuse every mutation with `not-permitted` (wasmtime's code; the WIT text
  suggests `read-only`, but guests are tested against wasmtime): open-at with
  `write`, `create`, `truncate` or `mutate-directory`, create-directory-at,
  link-at, rename-at, symlink-at, unlink-file-at, remove-directory-at,
  set-times(-at), set-size, write, write-via-stream, append-via-stream.
  A child descriptor therefore never has more rights than its parent.
* A directory may be mutated only while it holds `mutate-directory`, which
  it inherits from its parent. It is not granted per open-at request,
  because the wasip1 adapter (and wasi-libc) never asks for it and POSIX code
  such as `shutil.rmtree` mutates directories opened read-only; wasmtime
  likewise ignores the request.
* As in wasmtime, `create` or `truncate` open the file for writing and a
  file is always opened for reading unless only `write` was asked for. The
  host file is opened with exactly that mode, so the OS enforces it as in
  wasmtime: writing a file not opened for writing is `bad-descriptor` (from
  `write`, or from the first write on a write-via-stream/append-via-stream
  stream), reading one opened write-only likewise, and set-size is `invalid`.
* `link-at` with `symlink-follow` on the old path is `invalid` (as wasmtime);
  `symlink-at` refuses an absolute target and `readlink-at` refuses to
  reveal one, both with `not-permitted` (as cap-std).

Where wasmtime departs from POSIX or the WIT text, this host follows those:
a trailing `/` makes a path follow its last symlink and require a directory
(`stat-at "file/"` is `not-directory`, `remove-directory-at "dir/"` works);
get-flags reports `mutate-directory` on every directory that may be mutated;
the sync descriptor flags are honoured (O_SYNC/O_DSYNC/O_RSYNC) rather than
rejected with `unsupported`; `status-change-timestamp` is the ctime, not the
birth time; FIFOs and sockets are reported as such rather than `unknown`.

Streams share the descriptor's file description (reference-counted), so a
stream keeps working after the guest drops its descriptor, as in wasmtime;
the host file descriptor is closed when the last of them is dropped.
Regular files never block; FIFOs and character devices opened beneath a
preopen are non-blocking and polled.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from stat import S_ISBLK, S_ISCHR, S_ISDIR, S_ISFIFO, S_ISLNK, S_ISREG, S_ISSOCK
from typing import Any

from ..clocks.wall_clock import datetime
from ..runtime.calls import WASI_VERSION, Interface
from ..runtime.errors import ErrorValue
from ..runtime.poll import NEVER, READ, WRITE, WaitSpec
from ..runtime.resources import Res
from ..runtime.streams import (
    OUTPUT_BUDGET,
    InputStream,
    OutputStream,
    StreamClosed,
    StreamFailed,
    readable_now,
)
from ..runtime.values import Case

interface = Interface(f"wasi:filesystem/types@{WASI_VERSION}")
interface.resource("descriptor", Res.DESCRIPTOR)
interface.resource("directory-entry-stream", Res.DIRECTORY_ENTRY_STREAM)
interface.resource("input-stream", Res.INPUT_STREAM)
interface.resource("output-stream", Res.OUTPUT_STREAM)
interface.resource("error", Res.IO_ERROR)

#: Largest chunk one `read` returns.
MAX_READ = 1024 * 1024
#: Symbolic links one path lookup may expand before failing with `loop`.
MAX_SYMLINK_EXPANSIONS = 40
#: Largest value the host's off_t / timespec can take.
_I64_MAX = 2**63 - 1


# -- error codes -------------------------------------------------------------------

_ERRNO_NAMES = {
    "EACCES": "access", "EAGAIN": "would-block", "EALREADY": "already",
    "EBADF": "bad-descriptor", "EBUSY": "busy", "EDEADLK": "deadlock", "EDQUOT": "quota",
    "EEXIST": "exist", "EFBIG": "file-too-large", "EILSEQ": "illegal-byte-sequence",
    "EINPROGRESS": "in-progress", "EINTR": "interrupted", "EINVAL": "invalid", "EIO": "io",
    "EISDIR": "is-directory", "ELOOP": "loop", "EMLINK": "too-many-links",
    "EMSGSIZE": "message-size", "ENAMETOOLONG": "name-too-long", "ENODEV": "no-device",
    "ENOENT": "no-entry", "ENOLCK": "no-lock", "ENOMEM": "insufficient-memory",
    "ENOSPC": "insufficient-space", "ENOTDIR": "not-directory", "ENOTEMPTY": "not-empty",
    "ENOTRECOVERABLE": "not-recoverable", "ENOSYS": "unsupported", "ENOTSUP": "unsupported",
    "EOPNOTSUPP": "unsupported", "ENOTTY": "no-tty", "ENXIO": "no-such-device",
    "EOVERFLOW": "overflow", "EPERM": "not-permitted", "EPIPE": "pipe", "EROFS": "read-only",
    "ESPIPE": "invalid-seek", "ETXTBSY": "text-file-busy", "EXDEV": "cross-device",
}
ERRNO_CODES: dict[int, str] = {
    getattr(errno, name): code for name, code in _ERRNO_NAMES.items() if hasattr(errno, name)
}


def error_code(error: OSError) -> str:
    """The `error-code` for a host OS error (`io` when there is no closer match)."""
    return ERRNO_CODES.get(error.errno, "io") if error.errno is not None else "io"


@contextmanager
def _os_errors() -> Iterator[None]:
    """Turn a failed system call into the guest's `err(error-code)`."""
    try:
        yield
    except OSError as error:
        raise ErrorValue(error_code(error)) from None
    except OverflowError:  # an offset or size the host's off_t cannot hold
        raise ErrorValue("invalid") from None


def _type_of(mode: int) -> str:
    if S_ISREG(mode):
        return "regular-file"
    if S_ISDIR(mode):
        return "directory"
    if S_ISLNK(mode):
        return "symbolic-link"
    if S_ISCHR(mode):
        return "character-device"
    if S_ISBLK(mode):
        return "block-device"
    if S_ISFIFO(mode):
        return "fifo"
    if S_ISSOCK(mode):
        return "socket"
    return "unknown"


def _is_utf8(text: str) -> bool:
    """False for host names that are not valid UTF-8 (surrogate-escaped by Python)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# -- descriptors -------------------------------------------------------------------

class SharedFd:
    """A host file descriptor shared by a descriptor and the streams made from it."""

    __slots__ = ("fd", "refs")

    def __init__(self, fd: int):
        self.fd = fd
        self.refs = 1

    def retain(self) -> SharedFd:
        self.refs += 1
        return self

    def release(self) -> None:
        self.refs -= 1
        if self.refs == 0:
            fd, self.fd = self.fd, -1
            try:
                os.close(fd)
            except OSError:
                pass


class Descriptor:
    """The `descriptor` resource: an open file or directory and what it may do.

    `mutable` is the preopen's permission (false beneath a read-only preopen);
    `readable`/`writable` are a file's open mode.
    """

    def __init__(self, handle: SharedFd, *, directory: bool, readable: bool = True,
                 writable: bool = False, mutable: bool = False,
                 sync_flags: frozenset[str] = frozenset()):
        self._handle = handle
        self.directory = directory
        self.readable = readable
        self.writable = writable
        self.mutable = mutable
        self.sync_flags = sync_flags
        self.closed = False

    @property
    def fd(self) -> int:
        return self._handle.fd

    def share(self) -> SharedFd:
        """A new reference to the open file, for a stream that may outlive this handle."""
        return self._handle.retain()

    def flags(self) -> set[str]:
        if self.directory:
            return {"read", "mutate-directory"} if self.mutable else {"read"}
        flags = set(self.sync_flags)
        if self.readable:
            flags.add("read")
        if self.writable:
            flags.add("write")
        return flags

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._handle.release()


def open_preopen(host_path: str) -> SharedFd:
    """Open a host directory to serve as a preopen (raises OSError)."""
    return SharedFd(os.open(host_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))


def preopen_descriptor(handle: SharedFd, read_only: bool) -> Descriptor:
    """A new guest handle on an opened preopen directory."""
    return Descriptor(handle.retain(), directory=True, mutable=not read_only)


def _file(desc: Descriptor) -> Descriptor:
    if desc.directory:
        raise ErrorValue("bad-descriptor")
    return desc


def _dir(desc: Descriptor) -> Descriptor:
    if not desc.directory:
        raise ErrorValue("not-directory")
    return desc


def _require_mutable(desc: Descriptor) -> None:
    if not desc.mutable:
        raise ErrorValue("not-permitted")


# -- path resolution ---------------------------------------------------------------

#: How intermediate directories are opened: never through a symlink, and with
#: O_PATH where the OS has it so that search permission alone suffices.
_TRAVERSE = (os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
             | getattr(os, "O_PATH", 0))


@contextmanager
def _beneath(base: Descriptor, path: str, follow: bool) -> Iterator[tuple[int, str, bool]]:
    """Resolve `path` beneath the directory `base` to `(dir_fd, name, must_be_dir)`.

    `name` is one component (or ".") that is not a symlink unless `follow`
    is false; operate on it with `dir_fd` and no-follow semantics.
    """
    stack = [base.fd]
    try:
        dir_fd, name, must_be_dir = _resolve(stack, path, follow)
        if must_be_dir:
            try:
                mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
            except FileNotFoundError:
                pass
            except OSError as error:
                raise ErrorValue(error_code(error)) from None
            else:
                if not S_ISDIR(mode):
                    raise ErrorValue("not-directory")
        yield dir_fd, name, must_be_dir
    finally:
        for fd in stack[1:]:
            os.close(fd)


def _resolve(stack: list[int], path: str, follow: bool) -> tuple[int, str, bool]:
    """Walk `path` from `stack[0]`, pushing each directory opened on `stack`."""
    if "\0" in path:
        raise ErrorValue("invalid")
    if path.startswith("/"):
        raise ErrorValue("not-permitted")
    if not path:
        raise ErrorValue("no-entry")
    must_be_dir = path.endswith("/")
    follow = follow or must_be_dir  # POSIX: a trailing slash follows the last link
    queue = deque(part for part in path.split("/") if part)
    expansions = 0
    while True:
        part = queue.popleft()
        last = not queue
        if part in (".", ".."):
            if part == "..":
                if len(stack) == 1:
                    raise ErrorValue("not-permitted")
                os.close(stack.pop())
            if last:
                return stack[-1], ".", False
            continue
        top = stack[-1]
        if last and not follow:
            return top, part, must_be_dir
        if not last:
            try:
                stack.append(os.open(part, _TRAVERSE, dir_fd=top))
                continue
            except OSError as error:
                try:
                    target = _symlink_target(top, part)
                except OSError:
                    target = None
                if target is None:
                    raise ErrorValue(error_code(error)) from None
        else:
            with _os_errors():
                target = _symlink_target(top, part)
            if target is None:
                return top, part, must_be_dir
        expansions += 1
        if expansions > MAX_SYMLINK_EXPANSIONS:
            raise ErrorValue("loop")
        if target.startswith("/"):
            raise ErrorValue("not-permitted")
        parts = [p for p in target.split("/") if p]
        if not parts:
            raise ErrorValue("no-entry")
        if last and target.endswith("/"):
            must_be_dir = True
        queue.extendleft(reversed(parts))


def _symlink_target(dir_fd: int, name: str) -> str | None:
    """The target of the symlink `name`, or None if it is not one (or is missing)."""
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError as error:
        if error.errno in (errno.EINVAL, errno.ENOENT):
            return None
        raise


# -- streams -----------------------------------------------------------------------

def _seekable(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return True  # let the first read or write report the error
    return S_ISREG(mode) or S_ISBLK(mode)


class FileInputStream(InputStream):
    """Reads a file from an offset that advances; FIFOs and devices are polled."""

    def __init__(self, desc: Descriptor, offset: int):
        self._handle: SharedFd | None = desc.share()
        self._seekable = _seekable(self._handle.fd)
        self.offset = offset
        self._done = False

    def read(self, max_bytes: int) -> bytes:
        if self._handle is None or self._done:
            raise StreamClosed()
        if max_bytes == 0:
            return b""
        fd = self._handle.fd
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

    def close(self) -> None:
        if self._handle is not None:
            self._handle.release()
            self._handle = None


class FileOutputStream(OutputStream):
    """Writes at an offset that advances, or appends when `offset` is None.

    Writes to regular files complete at once. A FIFO or device takes what it
    can; the rest waits in a buffer and `check-write` says 0 until it drains.
    """

    def __init__(self, desc: Descriptor, offset: int | None):
        self._handle: SharedFd | None = desc.share()
        self._seekable = _seekable(self._handle.fd)
        self.offset = offset
        self._pending = bytearray()
        self._done = False

    def check_write(self) -> int:
        self._check_open()
        if not self._seekable:
            self._drain()
            if self._pending:
                return 0
        return OUTPUT_BUDGET

    def write(self, data: bytes) -> None:
        self._check_open()
        if not self._seekable:
            self._pending += data
            self._drain()
            return
        fd = self._handle.fd
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
        self._check_open()
        if not self._seekable:
            self._drain()

    def wait_on(self) -> WaitSpec:
        if self._handle is None or self._done or not self._pending:
            return NEVER
        return WaitSpec(fds=((self._handle.fd, WRITE),))

    def close(self) -> None:
        if self._handle is not None:
            self._handle.release()
            self._handle = None

    def _check_open(self) -> None:
        if self._handle is None or self._done:
            raise StreamClosed()

    def _drain(self) -> None:
        while self._pending:
            try:
                written = os.write(self._handle.fd, self._pending)
            except BlockingIOError:
                return
            except BrokenPipeError:
                self._done = True
                raise StreamClosed() from None
            except OSError as error:
                self._fail(error)
            del self._pending[:written]

    def _fail(self, error: OSError) -> None:
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


class DirectoryEntryStream:
    """The `directory-entry-stream` resource: a snapshot taken by read-directory."""

    def __init__(self, entries: list[dict | None]):
        self._entries = deque(entries)

    def next(self) -> dict | None:
        if not self._entries:
            return None
        entry = self._entries.popleft()
        if entry is None:  # a name that is not valid UTF-8
            raise ErrorValue("illegal-byte-sequence")
        return entry

    def close(self) -> None:
        self._entries.clear()


def _entry_type(entry: os.DirEntry) -> str:
    try:
        if entry.is_symlink():
            return "symbolic-link"
        if entry.is_dir(follow_symlinks=False):
            return "directory"
        if entry.is_file(follow_symlinks=False):
            return "regular-file"
        return _type_of(entry.stat(follow_symlinks=False).st_mode)
    except OSError:
        return "unknown"


# -- stat, times, hashes -----------------------------------------------------------

def _timestamp(ns: int) -> dict | None:
    return datetime(ns) if ns >= 0 else None  # datetime has no room for pre-1970


def _stat_record(result: os.stat_result) -> dict:
    return {
        "type": _type_of(result.st_mode),
        "link-count": result.st_nlink,
        "size": result.st_size,
        "data-access-timestamp": _timestamp(result.st_atime_ns),
        "data-modification-timestamp": _timestamp(result.st_mtime_ns),
        "status-change-timestamp": _timestamp(result.st_ctime_ns),
    }


def _metadata_hash(result: os.stat_result) -> dict:
    identity = f"{result.st_dev}:{result.st_ino}".encode()
    digest = hashlib.blake2b(identity, digest_size=16, person=b"wasi-fs-inode").digest()
    return {"lower": int.from_bytes(digest[:8], "little"),
            "upper": int.from_bytes(digest[8:], "little")}


def _new_times(atime: Case, mtime: Case,
               current: Any) -> tuple[int, int] | None | bool:
    """The `ns=` pair for os.utime; None for "both now", False for "no change"."""
    if atime.tag == "no-change" and mtime.tag == "no-change":
        return False
    if atime.tag == "now" and mtime.tag == "now":
        return None
    now = time.time_ns()
    old = current() if "no-change" in (atime.tag, mtime.tag) else None

    def pick(new: Case, old_ns: int | None) -> int:
        if new.tag == "no-change":
            return old_ns
        if new.tag == "now":
            return now
        ns = new.payload["seconds"] * 1_000_000_000 + new.payload["nanoseconds"]
        if ns > _I64_MAX:
            raise ErrorValue("overflow")
        return ns

    return (pick(atime, old.st_atime_ns if old else None),
            pick(mtime, old.st_mtime_ns if old else None))


# -- descriptor: file data ---------------------------------------------------------

@interface.func("[method]descriptor.read-via-stream")
def read_via_stream(ctx, desc: Descriptor, offset: int) -> FileInputStream:
    if desc.directory:
        raise ErrorValue("is-directory")
    return FileInputStream(desc, offset)


@interface.func("[method]descriptor.write-via-stream")
def write_via_stream(ctx, desc: Descriptor, offset: int) -> FileOutputStream:
    _require_mutable(_file(desc))
    return FileOutputStream(desc, offset)


@interface.func("[method]descriptor.append-via-stream")
def append_via_stream(ctx, desc: Descriptor) -> FileOutputStream:
    _require_mutable(_file(desc))
    return FileOutputStream(desc, None)


_ADVICE = {
    "normal": "POSIX_FADV_NORMAL", "sequential": "POSIX_FADV_SEQUENTIAL",
    "random": "POSIX_FADV_RANDOM", "will-need": "POSIX_FADV_WILLNEED",
    "dont-need": "POSIX_FADV_DONTNEED", "no-reuse": "POSIX_FADV_NOREUSE",
}


@interface.func("[method]descriptor.advise")
def advise(ctx, desc: Descriptor, offset: int, length: int, advice: str) -> None:
    fd = _file(desc).fd
    if offset > _I64_MAX or length > _I64_MAX:
        raise ErrorValue("invalid")
    constant = getattr(os, _ADVICE[advice], None)
    if constant is None or not hasattr(os, "posix_fadvise"):
        return  # advice is only a hint
    with _os_errors():
        os.posix_fadvise(fd, offset, length, constant)


@interface.func("[method]descriptor.sync-data")
def sync_data(ctx, desc: Descriptor) -> None:
    with _os_errors():
        getattr(os, "fdatasync", os.fsync)(desc.fd)


@interface.func("[method]descriptor.sync")
def sync(ctx, desc: Descriptor) -> None:
    with _os_errors():
        os.fsync(desc.fd)


@interface.func("[method]descriptor.get-flags")
def get_flags(ctx, desc: Descriptor) -> set[str]:
    return desc.flags()


@interface.func("[method]descriptor.get-type")
def get_type(ctx, desc: Descriptor) -> str:
    if desc.directory:
        return "directory"
    with _os_errors():
        return _type_of(os.fstat(desc.fd).st_mode)


@interface.func("[method]descriptor.set-size")
def set_size(ctx, desc: Descriptor, size: int) -> None:
    _require_mutable(_file(desc))
    with _os_errors():
        os.ftruncate(desc.fd, size)


@interface.func("[method]descriptor.set-times")
def set_times(ctx, desc: Descriptor, atime: Case, mtime: Case) -> None:
    _require_mutable(desc)
    fd = desc.fd
    with _os_errors():
        ns = _new_times(atime, mtime, lambda: os.fstat(fd))
        if ns is None:
            os.utime(fd)
        elif ns:
            os.utime(fd, ns=ns)


@interface.func("[method]descriptor.read")
def read(ctx, desc: Descriptor, length: int, offset: int) -> tuple[bytes, bool]:
    fd = _file(desc).fd
    with _os_errors():
        data = os.pread(fd, min(length, MAX_READ), offset)
    # As in wasmtime: end-of-file is reported by the read that returns nothing.
    return data, not data


@interface.func("[method]descriptor.write")
def write(ctx, desc: Descriptor, buffer: bytes, offset: int) -> int:
    _require_mutable(_file(desc))
    fd = desc.fd
    view = memoryview(buffer)
    total = 0
    with _os_errors():
        while view:
            try:
                written = os.pwrite(fd, view, offset + total)
            except OSError:
                if total:
                    break  # report the partial write; the next call sees the error
                raise
            total += written
            view = view[written:]
    return total


@interface.func("[method]descriptor.stat")
def stat(ctx, desc: Descriptor) -> dict:
    with _os_errors():
        return _stat_record(os.fstat(desc.fd))


@interface.func("[method]descriptor.is-same-object")
def is_same_object(ctx, desc: Descriptor, other: Descriptor) -> bool:
    try:
        a, b = os.fstat(desc.fd), os.fstat(other.fd)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


@interface.func("[method]descriptor.metadata-hash")
def metadata_hash(ctx, desc: Descriptor) -> dict:
    with _os_errors():
        return _metadata_hash(os.fstat(desc.fd))


# -- descriptor: directories and paths ---------------------------------------------

@interface.func("[method]descriptor.read-directory")
def read_directory(ctx, desc: Descriptor) -> DirectoryEntryStream:
    fd = _dir(desc).fd
    entries: list[dict | None] = []
    with _os_errors(), os.scandir(fd) as listing:
        for entry in listing:
            if not _is_utf8(entry.name):
                entries.append(None)
                continue
            entries.append({"type": _entry_type(entry), "name": entry.name})
    return DirectoryEntryStream(entries)


@interface.func("[method]directory-entry-stream.read-directory-entry")
def read_directory_entry(ctx, stream: DirectoryEntryStream) -> dict | None:
    return stream.next()


@interface.func("[method]descriptor.create-directory-at")
def create_directory_at(ctx, desc: Descriptor, path: str) -> None:
    _require_mutable(_dir(desc))
    with _beneath(desc, path, False) as (dir_fd, name, _), _os_errors():
        os.mkdir(name, 0o777, dir_fd=dir_fd)


@interface.func("[method]descriptor.stat-at")
def stat_at(ctx, desc: Descriptor, path_flags: set[str], path: str) -> dict:
    _dir(desc)
    with _beneath(desc, path, "symlink-follow" in path_flags) as (dir_fd, name, _), \
            _os_errors():
        return _stat_record(os.stat(name, dir_fd=dir_fd, follow_symlinks=False))


@interface.func("[method]descriptor.metadata-hash-at")
def metadata_hash_at(ctx, desc: Descriptor, path_flags: set[str], path: str) -> dict:
    _dir(desc)
    with _beneath(desc, path, "symlink-follow" in path_flags) as (dir_fd, name, _), \
            _os_errors():
        return _metadata_hash(os.stat(name, dir_fd=dir_fd, follow_symlinks=False))


@interface.func("[method]descriptor.set-times-at")
def set_times_at(ctx, desc: Descriptor, path_flags: set[str], path: str,
                 atime: Case, mtime: Case) -> None:
    _require_mutable(_dir(desc))
    with _beneath(desc, path, "symlink-follow" in path_flags) as (dir_fd, name, _), \
            _os_errors():
        ns = _new_times(atime, mtime,
                        lambda: os.stat(name, dir_fd=dir_fd, follow_symlinks=False))
        if ns is None:
            os.utime(name, dir_fd=dir_fd, follow_symlinks=False)
        elif ns:
            os.utime(name, ns=ns, dir_fd=dir_fd, follow_symlinks=False)


@interface.func("[method]descriptor.link-at")
def link_at(ctx, desc: Descriptor, old_path_flags: set[str], old_path: str,
            new_desc: Descriptor, new_path: str) -> None:
    _require_mutable(_dir(desc))
    _require_mutable(_dir(new_desc))
    if "symlink-follow" in old_path_flags:
        raise ErrorValue("invalid")
    with _beneath(desc, old_path, False) as (old_fd, old_name, _), \
            _beneath(new_desc, new_path, False) as (new_fd, new_name, _), _os_errors():
        os.link(old_name, new_name, src_dir_fd=old_fd, dst_dir_fd=new_fd,
                follow_symlinks=False)


_SYNC_OPEN_FLAGS = {
    "file-integrity-sync": getattr(os, "O_SYNC", 0),
    "data-integrity-sync": getattr(os, "O_DSYNC", 0),
    "requested-write-sync": getattr(os, "O_RSYNC", 0),
}


@interface.func("[method]descriptor.open-at")
def open_at(ctx, desc: Descriptor, path_flags: set[str], path: str,
            open_flags: set[str], flags: set[str]) -> Descriptor:
    _dir(desc)
    create = "create" in open_flags
    exclusive = create and "exclusive" in open_flags
    truncate = "truncate" in open_flags
    if "directory" in open_flags and (create or truncate or "exclusive" in open_flags):
        raise ErrorValue("invalid")
    writable = "write" in flags or create or truncate
    readable = "read" in flags or "write" not in flags
    if (writable or "mutate-directory" in flags) and not desc.mutable:
        raise ErrorValue("not-permitted")

    mode = os.O_RDWR if readable and writable else os.O_WRONLY if writable else os.O_RDONLY
    os_flags = mode | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    os_flags |= os.O_CREAT if create else 0
    os_flags |= os.O_EXCL if exclusive else 0
    os_flags |= os.O_TRUNC if truncate else 0
    os_flags |= os.O_DIRECTORY if "directory" in open_flags else 0
    sync_flags = frozenset(flags & _SYNC_OPEN_FLAGS.keys())
    for flag in sync_flags:
        os_flags |= _SYNC_OPEN_FLAGS[flag]

    # O_CREAT|O_EXCL never follows a final symlink (POSIX).
    follow = "symlink-follow" in path_flags and not exclusive
    with _beneath(desc, path, follow) as (dir_fd, name, must_be_dir):
        if must_be_dir:
            if create:
                raise ErrorValue("is-directory")
            os_flags |= os.O_DIRECTORY
        with _os_errors():
            fd = os.open(name, os_flags, 0o666, dir_fd=dir_fd)
    try:
        is_dir = S_ISDIR(os.fstat(fd).st_mode)
    except OSError as error:
        os.close(fd)
        raise ErrorValue(error_code(error)) from None
    if is_dir:
        return Descriptor(SharedFd(fd), directory=True, mutable=desc.mutable)
    return Descriptor(SharedFd(fd), directory=False, readable=readable, writable=writable,
                      mutable=desc.mutable, sync_flags=sync_flags)


@interface.func("[method]descriptor.readlink-at")
def readlink_at(ctx, desc: Descriptor, path: str) -> str:
    _dir(desc)
    with _beneath(desc, path, False) as (dir_fd, name, _), _os_errors():
        target = os.readlink(name, dir_fd=dir_fd)
    if target.startswith("/"):
        raise ErrorValue("not-permitted")  # would reveal a host path outside the sandbox
    if not _is_utf8(target):
        raise ErrorValue("illegal-byte-sequence")
    return target


@interface.func("[method]descriptor.remove-directory-at")
def remove_directory_at(ctx, desc: Descriptor, path: str) -> None:
    _require_mutable(_dir(desc))
    with _beneath(desc, path, False) as (dir_fd, name, _), _os_errors():
        os.rmdir(name, dir_fd=dir_fd)


@interface.func("[method]descriptor.rename-at")
def rename_at(ctx, desc: Descriptor, old_path: str, new_desc: Descriptor,
              new_path: str) -> None:
    _require_mutable(_dir(desc))
    _require_mutable(_dir(new_desc))
    with _beneath(desc, old_path, False) as (old_fd, old_name, _), \
            _beneath(new_desc, new_path, False) as (new_fd, new_name, _), _os_errors():
        os.rename(old_name, new_name, src_dir_fd=old_fd, dst_dir_fd=new_fd)


@interface.func("[method]descriptor.symlink-at")
def symlink_at(ctx, desc: Descriptor, old_path: str, new_path: str) -> None:
    _require_mutable(_dir(desc))
    if "\0" in old_path:
        raise ErrorValue("invalid")
    if old_path.startswith("/"):
        raise ErrorValue("not-permitted")  # a link that could only ever escape
    with _beneath(desc, new_path, False) as (dir_fd, name, _), _os_errors():
        os.symlink(old_path, name, dir_fd=dir_fd)


@interface.func("[method]descriptor.unlink-file-at")
def unlink_file_at(ctx, desc: Descriptor, path: str) -> None:
    _require_mutable(_dir(desc))
    with _beneath(desc, path, False) as (dir_fd, name, _), _os_errors():
        os.unlink(name, dir_fd=dir_fd)


# -- errors ------------------------------------------------------------------------

@interface.func("filesystem-error-code")
def filesystem_error_code(ctx, error: Any) -> str | None:
    return getattr(error, "filesystem_code", None)
