"""wasi:filesystem/types: the descriptor's functions, over the sandbox.

Paths are resolved by `sandbox` (which also holds the descriptor and its
rights); file streams live in `file_streams`. This module is the WIT face:
it checks what each call may do, runs it, and reports results and errors.

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
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from stat import S_ISBLK, S_ISCHR, S_ISDIR, S_ISFIFO, S_ISLNK, S_ISREG, S_ISSOCK
from typing import Any

from ..clocks.wall_clock import datetime
from ..runtime.calls import WASI_VERSION, Interface
from ..runtime.context import WasiCtx
from ..runtime.errors import ErrorValue
from ..runtime.resources import Res
from ..runtime.values import Case
from .file_streams import FileInputStream, FileOutputStream
from .sandbox import (
    Descriptor,
    SharedFd,
    as_directory,
    as_file,
    beneath,
    error_code,
    os_errors,
    require_mutable,
)

interface = Interface(f"wasi:filesystem/types@{WASI_VERSION}")
interface.resource("descriptor", Res.DESCRIPTOR)
interface.resource("directory-entry-stream", Res.DIRECTORY_ENTRY_STREAM)
interface.resource("input-stream", Res.INPUT_STREAM)
interface.resource("output-stream", Res.OUTPUT_STREAM)
interface.resource("error", Res.IO_ERROR)

#: Largest chunk one `read` returns.
MAX_READ = 1024 * 1024
#: Largest value the host's off_t / timespec can take.
_I64_MAX = 2**63 - 1

#: The WIT `descriptor-type` of a host file mode, tested in this order.
_FILE_TYPES: tuple[tuple[Callable[[int], bool], str], ...] = (
    (S_ISREG, "regular-file"), (S_ISDIR, "directory"), (S_ISLNK, "symbolic-link"),
    (S_ISCHR, "character-device"), (S_ISBLK, "block-device"), (S_ISFIFO, "fifo"),
    (S_ISSOCK, "socket"),
)


def _type_of(mode: int) -> str:
    return next((name for is_type, name in _FILE_TYPES if is_type(mode)), "unknown")


def _is_utf8(text: str) -> bool:
    """False for host names that are not valid UTF-8 (surrogate-escaped by Python)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# -- directory listings ------------------------------------------------------------

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


def _set_times(atime: Case, mtime: Case, stat: Callable[[], os.stat_result],
               utime: Callable[..., None]) -> None:
    """Apply a `set-times(-at)` request through `utime` (os.utime bound to
    the file); `stat` reads the times a `no-change` keeps."""
    if atime.tag == mtime.tag == "no-change":
        return
    if atime.tag == mtime.tag == "now":
        utime()
        return
    now = time.time_ns()
    kept_atime = kept_mtime = now  # used only for a `no-change`, which sets them
    if "no-change" in (atime.tag, mtime.tag):
        old = stat()
        kept_atime, kept_mtime = old.st_atime_ns, old.st_mtime_ns
    utime(ns=(_new_time(atime, now, kept_atime), _new_time(mtime, now, kept_mtime)))


def _new_time(new: Case, now: int, kept: int) -> int:
    if new.tag == "no-change":
        return kept
    if new.tag == "now":
        return now
    ns = new.payload["seconds"] * 1_000_000_000 + new.payload["nanoseconds"]
    if ns > _I64_MAX:
        raise ErrorValue("overflow")
    return ns


# -- descriptor: file data ---------------------------------------------------------

@interface.func("[method]descriptor.read-via-stream")
def read_via_stream(ctx: WasiCtx, desc: Descriptor, offset: int) -> FileInputStream:
    if desc.directory:
        raise ErrorValue("is-directory")
    return FileInputStream(desc, offset)


@interface.func("[method]descriptor.write-via-stream")
def write_via_stream(ctx: WasiCtx, desc: Descriptor, offset: int) -> FileOutputStream:
    require_mutable(as_file(desc))
    return FileOutputStream(desc, offset)


@interface.func("[method]descriptor.append-via-stream")
def append_via_stream(ctx: WasiCtx, desc: Descriptor) -> FileOutputStream:
    require_mutable(as_file(desc))
    return FileOutputStream(desc, None)


_ADVICE = {
    "normal": "POSIX_FADV_NORMAL", "sequential": "POSIX_FADV_SEQUENTIAL",
    "random": "POSIX_FADV_RANDOM", "will-need": "POSIX_FADV_WILLNEED",
    "dont-need": "POSIX_FADV_DONTNEED", "no-reuse": "POSIX_FADV_NOREUSE",
}


@interface.func("[method]descriptor.advise")
def advise(ctx: WasiCtx, desc: Descriptor, offset: int, length: int, advice: str) -> None:
    fd = as_file(desc).fd
    if offset > _I64_MAX or length > _I64_MAX:
        raise ErrorValue("invalid")
    constant = getattr(os, _ADVICE[advice], None)
    if constant is None or not hasattr(os, "posix_fadvise"):
        return  # advice is only a hint
    with os_errors():
        os.posix_fadvise(fd, offset, length, constant)


@interface.func("[method]descriptor.sync-data")
def sync_data(ctx: WasiCtx, desc: Descriptor) -> None:
    with os_errors():
        getattr(os, "fdatasync", os.fsync)(desc.fd)


@interface.func("[method]descriptor.sync")
def sync(ctx: WasiCtx, desc: Descriptor) -> None:
    with os_errors():
        os.fsync(desc.fd)


@interface.func("[method]descriptor.get-flags")
def get_flags(ctx: WasiCtx, desc: Descriptor) -> set[str]:
    return desc.flags()


@interface.func("[method]descriptor.get-type")
def get_type(ctx: WasiCtx, desc: Descriptor) -> str:
    if desc.directory:
        return "directory"
    with os_errors():
        return _type_of(os.fstat(desc.fd).st_mode)


@interface.func("[method]descriptor.set-size")
def set_size(ctx: WasiCtx, desc: Descriptor, size: int) -> None:
    require_mutable(as_file(desc))
    with os_errors():
        os.ftruncate(desc.fd, size)


@interface.func("[method]descriptor.set-times")
def set_times(ctx: WasiCtx, desc: Descriptor, atime: Case, mtime: Case) -> None:
    require_mutable(desc)
    fd = desc.fd
    with os_errors():
        _set_times(atime, mtime, lambda: os.fstat(fd), partial(os.utime, fd))


@interface.func("[method]descriptor.read")
def read(ctx: WasiCtx, desc: Descriptor, length: int, offset: int) -> tuple[bytes, bool]:
    fd = as_file(desc).fd
    with os_errors():
        data = os.pread(fd, min(length, MAX_READ), offset)
    # As in wasmtime: end-of-file is reported by the read that returns nothing.
    return data, not data


@interface.func("[method]descriptor.write")
def write(ctx: WasiCtx, desc: Descriptor, buffer: bytes, offset: int) -> int:
    require_mutable(as_file(desc))
    fd = desc.fd
    view = memoryview(buffer)
    total = 0
    with os_errors():
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
def stat(ctx: WasiCtx, desc: Descriptor) -> dict:
    with os_errors():
        return _stat_record(os.fstat(desc.fd))


@interface.func("[method]descriptor.is-same-object")
def is_same_object(ctx: WasiCtx, desc: Descriptor, other: Descriptor) -> bool:
    try:
        a, b = os.fstat(desc.fd), os.fstat(other.fd)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


@interface.func("[method]descriptor.metadata-hash")
def metadata_hash(ctx: WasiCtx, desc: Descriptor) -> dict:
    with os_errors():
        return _metadata_hash(os.fstat(desc.fd))


# -- descriptor: directories and paths ---------------------------------------------

@interface.func("[method]descriptor.read-directory")
def read_directory(ctx: WasiCtx, desc: Descriptor) -> DirectoryEntryStream:
    fd = as_directory(desc).fd
    entries: list[dict | None] = []
    with os_errors(), os.scandir(fd) as listing:
        for entry in listing:
            if not _is_utf8(entry.name):
                entries.append(None)
                continue
            entries.append({"type": _entry_type(entry), "name": entry.name})
    return DirectoryEntryStream(entries)


@interface.func("[method]directory-entry-stream.read-directory-entry")
def read_directory_entry(ctx: WasiCtx, stream: DirectoryEntryStream) -> dict | None:
    return stream.next()


@interface.func("[method]descriptor.create-directory-at")
def create_directory_at(ctx: WasiCtx, desc: Descriptor, path: str) -> None:
    require_mutable(as_directory(desc))
    with beneath(desc, path, False) as (dir_fd, name, _), os_errors():
        os.mkdir(name, 0o777, dir_fd=dir_fd)


@interface.func("[method]descriptor.stat-at")
def stat_at(ctx: WasiCtx, desc: Descriptor, path_flags: set[str], path: str) -> dict:
    return _stat_record(_stat_at(desc, path_flags, path))


@interface.func("[method]descriptor.metadata-hash-at")
def metadata_hash_at(ctx: WasiCtx, desc: Descriptor, path_flags: set[str], path: str) -> dict:
    return _metadata_hash(_stat_at(desc, path_flags, path))


def _stat_at(desc: Descriptor, path_flags: set[str], path: str) -> os.stat_result:
    as_directory(desc)
    with beneath(desc, path, "symlink-follow" in path_flags) as (dir_fd, name, _), \
            os_errors():
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)


@interface.func("[method]descriptor.set-times-at")
def set_times_at(ctx: WasiCtx, desc: Descriptor, path_flags: set[str], path: str,
                 atime: Case, mtime: Case) -> None:
    require_mutable(as_directory(desc))
    with beneath(desc, path, "symlink-follow" in path_flags) as (dir_fd, name, _), \
            os_errors():
        _set_times(atime, mtime,
                   lambda: os.stat(name, dir_fd=dir_fd, follow_symlinks=False),
                   partial(os.utime, name, dir_fd=dir_fd, follow_symlinks=False))


@interface.func("[method]descriptor.link-at")
def link_at(ctx: WasiCtx, desc: Descriptor, old_path_flags: set[str], old_path: str,
            new_desc: Descriptor, new_path: str) -> None:
    require_mutable(as_directory(desc))
    require_mutable(as_directory(new_desc))
    if "symlink-follow" in old_path_flags:
        raise ErrorValue("invalid")
    with beneath(desc, old_path, False) as (old_fd, old_name, _), \
            beneath(new_desc, new_path, False) as (new_fd, new_name, _), os_errors():
        os.link(old_name, new_name, src_dir_fd=old_fd, dst_dir_fd=new_fd,
                follow_symlinks=False)


_SYNC_OPEN_FLAGS = {
    "file-integrity-sync": getattr(os, "O_SYNC", 0),
    "data-integrity-sync": getattr(os, "O_DSYNC", 0),
    "requested-write-sync": getattr(os, "O_RSYNC", 0),
}


@interface.func("[method]descriptor.open-at")
def open_at(ctx: WasiCtx, desc: Descriptor, path_flags: set[str], path: str,
            open_flags: set[str], flags: set[str]) -> Descriptor:
    as_directory(desc)
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
    with beneath(desc, path, follow) as (dir_fd, name, must_be_dir):
        if must_be_dir:
            if create:
                raise ErrorValue("is-directory")
            os_flags |= os.O_DIRECTORY
        with os_errors():
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
def readlink_at(ctx: WasiCtx, desc: Descriptor, path: str) -> str:
    as_directory(desc)
    with beneath(desc, path, False) as (dir_fd, name, _), os_errors():
        target = os.readlink(name, dir_fd=dir_fd)
    if target.startswith("/"):
        raise ErrorValue("not-permitted")  # would reveal a host path outside the sandbox
    if not _is_utf8(target):
        raise ErrorValue("illegal-byte-sequence")
    return target


@interface.func("[method]descriptor.remove-directory-at")
def remove_directory_at(ctx: WasiCtx, desc: Descriptor, path: str) -> None:
    require_mutable(as_directory(desc))
    with beneath(desc, path, False) as (dir_fd, name, _), os_errors():
        os.rmdir(name, dir_fd=dir_fd)


@interface.func("[method]descriptor.rename-at")
def rename_at(ctx: WasiCtx, desc: Descriptor, old_path: str, new_desc: Descriptor,
              new_path: str) -> None:
    require_mutable(as_directory(desc))
    require_mutable(as_directory(new_desc))
    with beneath(desc, old_path, False) as (old_fd, old_name, _), \
            beneath(new_desc, new_path, False) as (new_fd, new_name, _), os_errors():
        os.rename(old_name, new_name, src_dir_fd=old_fd, dst_dir_fd=new_fd)


@interface.func("[method]descriptor.symlink-at")
def symlink_at(ctx: WasiCtx, desc: Descriptor, old_path: str, new_path: str) -> None:
    require_mutable(as_directory(desc))
    if "\0" in old_path:
        raise ErrorValue("invalid")
    if old_path.startswith("/"):
        raise ErrorValue("not-permitted")  # a link that could only ever escape
    with beneath(desc, new_path, False) as (dir_fd, name, _), os_errors():
        os.symlink(old_path, name, dir_fd=dir_fd)


@interface.func("[method]descriptor.unlink-file-at")
def unlink_file_at(ctx: WasiCtx, desc: Descriptor, path: str) -> None:
    require_mutable(as_directory(desc))
    with beneath(desc, path, False) as (dir_fd, name, _), os_errors():
        os.unlink(name, dir_fd=dir_fd)


# -- errors ------------------------------------------------------------------------

@interface.func("filesystem-error-code")
def filesystem_error_code(ctx: WasiCtx, error: Any) -> str | None:
    return getattr(error, "filesystem_code", None)
