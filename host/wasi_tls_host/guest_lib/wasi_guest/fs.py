"""wasi:filesystem helpers.

The generated module for wasi:filesystem/types is ``wit_world.imports.types``
in a world whose only "types" interface is the filesystem one (world
``plain``), and ``wit_world.imports.wasi_filesystem_types`` where another
package also has a "types" interface (world ``tls-client`` imports
wasi:tls/types).  ``fstypes`` below is whichever exists; likewise
``preopens``, which is ``wasi_filesystem_preopens`` in the worlds that also
import wasi-tls-host:tls/preopens (``tls-server``, ``tls-full-client``).
"""

from componentize_py_types import Err

try:
    from wit_world.imports import wasi_filesystem_preopens as preopens
except ImportError:
    from wit_world.imports import preopens

try:
    from wit_world.imports import wasi_filesystem_types as fstypes
except ImportError:
    from wit_world.imports import types as fstypes

from . import close
from . import io as _io
from .errors import FsError, StreamClosed, StreamFailed, code_name

DescriptorFlags = fstypes.DescriptorFlags
DescriptorType = fstypes.DescriptorType
OpenFlags = fstypes.OpenFlags
PathFlags = fstypes.PathFlags
ErrorCode = fstypes.ErrorCode


def fs_error(err, what=None):
    value = err.value if isinstance(err, Err) else err
    return FsError(code_name(value), what)


def call(fn, *args, what=None):
    """Call a filesystem function, converting Err(error-code) to FsError."""
    try:
        return fn(*args)
    except Err as e:
        raise fs_error(e, what) from None


def preopened_directories():
    """[(guest_path, descriptor)] for every preopen, in host order."""
    return [(path, desc) for desc, path in preopens.get_directories()]


def find_preopen(guest_path: str):
    """Descriptor of the preopen named ``guest_path`` (trailing slashes are
    ignored), or raise FsError("no-entry").  Other preopen handles are
    dropped."""
    want = guest_path.rstrip("/") or "/"
    found = None
    for path, desc in preopened_directories():
        if found is None and (path.rstrip("/") or "/") == want:
            found = desc
        else:
            close(desc)
    if found is None:
        raise FsError("no-entry", guest_path)
    return found


def locate(guest_path: str):
    """(descriptor of the preopened directory that holds ``guest_path``, the
    path relative to it): the preopen with the longest name that is a
    leading part of ``guest_path``. FsError("no-entry") if none holds it.
    The other preopen handles are dropped."""
    best = None
    for path, desc in preopened_directories():
        base = path.rstrip("/")
        inside = guest_path.startswith(base + "/") and len(guest_path) > len(base) + 1
        if inside and (best is None or len(base) > len(best[0])):
            if best is not None:
                close(best[1])
            best = (base, desc)
        else:
            close(desc)
    if best is None:
        raise FsError("no-entry", guest_path)
    base, desc = best
    return desc, guest_path[len(base) + 1:]


def type_name(t) -> str:
    return code_name(t)


def open_file(directory, path, create=False, truncate=False, write=False):
    oflags = OpenFlags(0)
    if create:
        oflags |= OpenFlags.CREATE
    if truncate:
        oflags |= OpenFlags.TRUNCATE
    dflags = DescriptorFlags.READ
    if write:
        dflags |= DescriptorFlags.WRITE
    return call(directory.open_at, PathFlags.SYMLINK_FOLLOW, path, oflags, dflags, what=path)


def _convert_stream_error(exc, what):
    """File stream failures carry a wasi:io/error; report them as FsError."""
    if isinstance(exc, StreamFailed):
        return FsError("io", f"{what}: {exc.detail}")
    return exc


def write_file(directory, path, data) -> int:
    """Create/truncate ``path`` under ``directory`` and write ``data`` through
    write-via-stream.  Returns the number of bytes written."""
    f = open_file(directory, path, create=True, truncate=True, write=True)
    try:
        out = call(f.write_via_stream, 0, what=path)
        try:
            _io.write_all(out, data)
        except (StreamFailed, StreamClosed) as e:
            raise _convert_stream_error(e, path) from None
        finally:
            close(out)
    finally:
        close(f)
    return len(data)


def read_file(directory, path) -> bytes:
    """Read all of ``path`` under ``directory`` through read-via-stream."""
    f = open_file(directory, path)
    try:
        inp = call(f.read_via_stream, 0, what=path)
        try:
            return _io.read_all(inp)
        except StreamFailed as e:
            raise _convert_stream_error(e, path) from None
        finally:
            close(inp)
    finally:
        close(f)


def list_directory(directory):
    """Sorted [(name, type-name)] of a directory's entries."""
    stream = call(directory.read_directory)
    out = []
    try:
        while True:
            entry = call(stream.read_directory_entry)
            if entry is None:
                break
            out.append((entry.name, type_name(entry.type)))
    finally:
        close(stream)
    return sorted(out)


__all__ = [
    "DescriptorFlags",
    "DescriptorType",
    "ErrorCode",
    "OpenFlags",
    "PathFlags",
    "call",
    "find_preopen",
    "fs_error",
    "fstypes",
    "list_directory",
    "open_file",
    "preopened_directories",
    "read_file",
    "type_name",
    "write_file",
]
