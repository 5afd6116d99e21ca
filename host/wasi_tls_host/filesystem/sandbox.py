"""The filesystem sandbox: descriptors, their rights, and path resolution.

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

A descriptor carries what it may do: `mutable` (false beneath a read-only
preopen, and inherited by everything opened beneath it) and a file's open
mode. Host errors become the WIT `error-code` here too, so that every layer
above reports them alike.
"""

from __future__ import annotations

import errno
import os
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from stat import S_ISDIR

from ..runtime.errors import ErrorValue

#: Symbolic links one path lookup may expand before failing with `loop`.
MAX_SYMLINK_EXPANSIONS = 40

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
def os_errors() -> Iterator[None]:
    """Turn a failed system call into the guest's `err(error-code)`."""
    try:
        yield
    except OSError as error:
        raise ErrorValue(error_code(error)) from None
    except OverflowError:  # an offset or size the host's off_t cannot hold
        raise ErrorValue("invalid") from None


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


def as_file(desc: Descriptor) -> Descriptor:
    """`desc`, which must be a file (`bad-descriptor` otherwise)."""
    if desc.directory:
        raise ErrorValue("bad-descriptor")
    return desc


def as_directory(desc: Descriptor) -> Descriptor:
    """`desc`, which must be a directory (`not-directory` otherwise)."""
    if not desc.directory:
        raise ErrorValue("not-directory")
    return desc


def require_mutable(desc: Descriptor) -> None:
    """Refuse a mutation beneath a read-only preopen."""
    if not desc.mutable:
        raise ErrorValue("not-permitted")


# -- path resolution ---------------------------------------------------------------

#: How intermediate directories are opened: never through a symlink, and with
#: O_PATH where the OS has it so that search permission alone suffices.
_TRAVERSE = (os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
             | getattr(os, "O_PATH", 0))


@contextmanager
def beneath(base: Descriptor, path: str, follow: bool) -> Iterator[tuple[int, str, bool]]:
    """Resolve `path` beneath the directory `base` to `(dir_fd, name, must_be_dir)`.

    `name` is one component (or ".") that is not a symlink unless `follow`
    is false; operate on it with `dir_fd` and no-follow semantics. The
    directories opened on the way are closed when the block ends.
    """
    lookup = _Lookup(base.fd, path, follow)
    try:
        dir_fd, name, must_be_dir = lookup.run()
        if must_be_dir:
            _require_directory(dir_fd, name)
        yield dir_fd, name, must_be_dir
    finally:
        lookup.close()


class _Lookup:
    """One walk down a path. `stack` holds the directories entered so far
    (the first is the base descriptor's own fd, which the walk does not
    close); `queue` holds the components still to walk, with the target of
    each symlink met spliced in at its front."""

    def __init__(self, base_fd: int, path: str, follow: bool):
        if "\0" in path:
            raise ErrorValue("invalid")
        if path.startswith("/"):
            raise ErrorValue("not-permitted")
        if not path:
            raise ErrorValue("no-entry")
        self.stack = [base_fd]
        self.queue = deque(_components(path))
        self.must_be_dir = path.endswith("/")
        # POSIX: a trailing slash follows the last link.
        self.follow = follow or self.must_be_dir
        self.expansions = 0

    def run(self) -> tuple[int, str, bool]:
        """Walk to the last component: `(dir_fd, name, must_be_dir)`."""
        while True:
            part = self.queue.popleft()
            last = not self.queue
            if part in (".", ".."):
                if part == "..":
                    self._climb()
                if last:
                    return self.stack[-1], ".", False
                continue
            target = self._last_link(part) if last else self._enter(part)
            if target is not None:
                self._expand(target, last)
            elif last:
                return self.stack[-1], part, self.must_be_dir

    def close(self) -> None:
        for fd in self.stack[1:]:
            os.close(fd)
        del self.stack[1:]

    def _climb(self) -> None:
        if len(self.stack) == 1:
            raise ErrorValue("not-permitted")
        os.close(self.stack.pop())

    def _enter(self, part: str) -> str | None:
        """Open the directory `part`; if it is a symlink, its target instead."""
        top = self.stack[-1]
        try:
            self.stack.append(os.open(part, _TRAVERSE, dir_fd=top))
            return None
        except OSError as error:
            try:
                target = _symlink_target(top, part)
            except OSError:
                target = None
            if target is None:
                raise ErrorValue(error_code(error)) from None
            return target

    def _last_link(self, part: str) -> str | None:
        """The target of the last component when it is a link to follow."""
        if not self.follow:
            return None
        with os_errors():
            return _symlink_target(self.stack[-1], part)

    def _expand(self, target: str, last: bool) -> None:
        self.expansions += 1
        if self.expansions > MAX_SYMLINK_EXPANSIONS:
            raise ErrorValue("loop")
        if target.startswith("/"):
            raise ErrorValue("not-permitted")
        parts = _components(target)
        if not parts:
            raise ErrorValue("no-entry")
        if last and target.endswith("/"):
            self.must_be_dir = True
        self.queue.extendleft(reversed(parts))


def _components(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


def _require_directory(dir_fd: int, name: str) -> None:
    """A path with a trailing `/` names a directory, or nothing yet."""
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return
    except OSError as error:
        raise ErrorValue(error_code(error)) from None
    if not S_ISDIR(mode):
        raise ErrorValue("not-directory")


def _symlink_target(dir_fd: int, name: str) -> str | None:
    """The target of the symlink `name`, or None if it is not one (or is missing)."""
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError as error:
        if error.errno in (errno.EINVAL, errno.ENOENT):
            return None
        raise
