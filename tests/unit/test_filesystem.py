"""Unit tests for wasi:filesystem: the host functions called directly, no wasm.

Each test gets a sandbox directory with a sibling "outside" directory that
the guest must never reach, and symlinks that try to reach it.
"""

from __future__ import annotations

import errno
import io
import os
import re
from pathlib import Path

import pytest

from wasi_tls_host.config import HostConfig, Preopen
from wasi_tls_host.filesystem import preopens, sandbox
from wasi_tls_host.filesystem import types as fs
from wasi_tls_host.filesystem.file_streams import FileInputStream, FileOutputStream
from wasi_tls_host.guest_tools import WIT_DIR
from wasi_tls_host.io import streams as io_streams
from wasi_tls_host.runtime.errors import ErrorValue, Trap
from wasi_tls_host.runtime.resources import Res
from wasi_tls_host.runtime.streams import StreamClosed, StreamFailed
from wasi_tls_host.runtime.values import Case

WIT = WIT_DIR / "deps" / "filesystem" / "types.wit"

NOFOLLOW: set[str] = set()
FOLLOW = {"symlink-follow"}
READ = {"read"}
WRITE = {"write"}
RW = {"read", "write"}
NO_CHANGE = Case("no-change")
NOW = Case("now")


def make_ctx(*preopen_list: Preopen):
    from wasi_tls_host.runtime.context import WasiCtx
    config = HostConfig(preopens=list(preopen_list), stdin=io.BytesIO(),
                        stdout=io.BytesIO(), stderr=io.BytesIO())
    return WasiCtx(config)


def code(function, *args) -> str:
    """Call a host function that must fail and return its error-code."""
    with pytest.raises(ErrorValue) as failure:
        function(None, *args)
    return failure.value.payload


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    root = tmp_path / "sandbox"
    root.mkdir()
    (root / "hello.txt").write_bytes(b"hello world")
    (root / "sub").mkdir()
    (root / "sub" / "inner.txt").write_bytes(b"inner")
    (root / "full").mkdir()
    (root / "full" / "x").write_bytes(b"x")
    os.symlink("/etc", root / "link_abs")
    os.symlink("../outside", root / "link_up")
    os.symlink("../outside/secret.txt", root / "link_up_file")
    os.symlink("sub", root / "link_in")
    os.symlink("hello.txt", root / "link_file")
    os.symlink("sub/../link_up", root / "link_chain")
    os.symlink(".", root / "self")
    os.symlink("loop_b", root / "loop_a")
    os.symlink("loop_a", root / "loop_b")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    return root


@pytest.fixture
def ctx(layout: Path):
    context = make_ctx(Preopen(str(layout), "/sandbox"),
                       Preopen(str(layout), "/ro", read_only=True))
    yield context
    context.close()


@pytest.fixture
def root(ctx) -> sandbox.Descriptor:
    return preopens.get_directories(ctx)[0][0]


@pytest.fixture
def ro(ctx) -> sandbox.Descriptor:
    return preopens.get_directories(ctx)[1][0]


def open_file(d, path, flags=READ, oflags=frozenset(), path_flags=NOFOLLOW):
    return fs.open_at(None, d, set(path_flags), path, set(oflags), set(flags))


def fd_is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError as error:
        assert error.errno == errno.EBADF
        return False
    return True


# -- the interface as linked --------------------------------------------------------

def test_every_wit_function_is_implemented():
    text = WIT.read_text()
    expected = {"filesystem-error-code"}
    for resource, body in re.findall(r"resource ([\w-]+) \{(.*?)\n    \}", text, re.S):
        for name in re.findall(r"^\s*([\w-]+): func\(", body, re.M):
            expected.add(f"[method]{resource}.{name}")
    assert len(expected) == 29  # 27 descriptor methods, read-directory-entry, one function
    assert set(fs.interface.functions) == expected
    assert fs.interface.resources == {
        "descriptor": Res.DESCRIPTOR, "directory-entry-stream": Res.DIRECTORY_ENTRY_STREAM,
        "input-stream": Res.INPUT_STREAM, "output-stream": Res.OUTPUT_STREAM,
        "error": Res.IO_ERROR,
    }
    assert fs.interface.name.startswith("wasi:filesystem/types@0.2.")
    assert preopens.interface.resources == {"descriptor": Res.DESCRIPTOR}
    assert set(preopens.interface.functions) == {"get-directories"}


# -- preopens -----------------------------------------------------------------------

def test_no_directories_unless_preopened():
    context = make_ctx()
    assert preopens.get_directories(context) == []


def test_preopens_are_opened_once_and_each_handle_is_independent(ctx, layout):
    first = preopens.get_directories(ctx)
    assert [guest for _, guest in first] == ["/sandbox", "/ro"]
    opened = ctx.filesystem.preopens
    assert opened is not None
    second = preopens.get_directories(ctx)
    assert ctx.filesystem.preopens is opened
    assert first[0][0] is not second[0][0]
    assert first[0][0].fd == second[0][0].fd
    first[0][0].close()
    first[0][0].close()  # idempotent
    assert fd_is_open(second[0][0].fd)
    assert fs.stat_at(None, second[0][0], NOFOLLOW, "hello.txt")["size"] == 11


def test_preopen_flags_and_type(root, ro):
    assert fs.get_flags(None, root) == {"read", "mutate-directory"}
    assert fs.get_flags(None, ro) == {"read"}
    assert fs.get_type(None, root) == "directory"


def test_a_vanished_preopen_traps_with_its_path(tmp_path):
    gone = tmp_path / "gone"
    context = make_ctx(Preopen(str(tmp_path), "/ok"), Preopen(str(gone), "/gone"))
    with pytest.raises(Trap, match="gone"):
        preopens.get_directories(context)


# -- reading and writing files ------------------------------------------------------

def test_read_at_offsets_and_end_of_file(root):
    f = open_file(root, "hello.txt")
    assert fs.get_type(None, f) == "regular-file"
    assert fs.get_flags(None, f) == {"read"}
    assert fs.read(None, f, 5, 0) == (b"hello", False)
    # As in wasmtime, end-of-file comes with the read that returns nothing.
    assert fs.read(None, f, 100, 6) == (b"world", False)
    assert fs.read(None, f, 10, 11) == (b"", True)
    assert fs.read(None, f, 10, 1000) == (b"", True)
    assert code(fs.read, f, 10, 2**64 - 1) == "invalid"


def test_one_read_is_capped_at_one_mebibyte(root, layout):
    (layout / "big").write_bytes(b"x" * (fs.MAX_READ + 10))
    f = open_file(root, "big")
    data, eof = fs.read(None, f, 2 * fs.MAX_READ, 0)
    assert len(data) == fs.MAX_READ and not eof
    assert fs.read(None, f, 2 * fs.MAX_READ, fs.MAX_READ) == (b"x" * 10, False)


def test_write_at_offset(root, layout):
    f = open_file(root, "new.txt", flags=RW, oflags={"create"})
    assert fs.get_flags(None, f) == {"read", "write"}
    assert fs.write(None, f, b"abcdef", 0) == 6
    assert fs.write(None, f, b"XY", 2) == 2
    assert fs.write(None, f, b"!", 10) == 1
    assert (layout / "new.txt").read_bytes() == b"abXYef\0\0\0\0!"
    assert fs.read(None, f, 4, 0) == (b"abXY", False)


def stream_failure(operation) -> str:
    with pytest.raises(StreamFailed) as failure:
        operation()
    return failure.value.filesystem_code


def test_open_mode_is_enforced(root, layout):
    # The host file has exactly the guest's open mode, so the OS says no (as in wasmtime).
    reader = open_file(root, "hello.txt", flags=READ)
    assert code(fs.write, reader, b"x", 0) == "bad-descriptor"
    assert code(fs.set_size, reader, 0) == "invalid"
    stream = fs.write_via_stream(None, reader, 0)
    assert stream_failure(lambda: stream.write(b"x")) == "bad-descriptor"
    stream = fs.append_via_stream(None, reader)
    assert stream_failure(lambda: stream.write(b"x")) == "bad-descriptor"
    writer = open_file(root, "hello.txt", flags=WRITE)
    assert fs.get_flags(None, writer) == {"write"}
    assert code(fs.read, writer, 1, 0) == "bad-descriptor"
    stream = fs.read_via_stream(None, writer, 0)
    assert stream_failure(lambda: stream.read(1)) == "bad-descriptor"
    assert fs.write(None, writer, b"J", 0) == 1
    assert (layout / "hello.txt").read_bytes() == b"Jello world"


def test_create_and_truncate_imply_write_as_in_wasmtime(root, layout):
    f = open_file(root, "made", flags=set(), oflags={"create"})
    assert fs.get_flags(None, f) == {"read", "write"}
    t = open_file(root, "hello.txt", flags=READ, oflags={"truncate"})
    assert fs.stat(None, t)["size"] == 0
    assert (layout / "hello.txt").read_bytes() == b""


def test_file_operations_on_a_directory(root):
    assert code(fs.read, root, 1, 0) == "bad-descriptor"
    assert code(fs.write, root, b"x", 0) == "bad-descriptor"
    assert code(fs.read_via_stream, root, 0) == "is-directory"
    assert code(fs.write_via_stream, root, 0) == "bad-descriptor"
    assert code(fs.append_via_stream, root) == "bad-descriptor"
    assert code(fs.set_size, root, 0) == "bad-descriptor"
    assert code(fs.advise, root, 0, 0, "normal") == "bad-descriptor"


def test_path_operations_on_a_file(root):
    f = open_file(root, "hello.txt")
    assert code(fs.open_at, f, NOFOLLOW, "x", set(), READ) == "not-directory"
    assert code(fs.stat_at, f, NOFOLLOW, "x") == "not-directory"
    assert code(fs.read_directory, f) == "not-directory"
    assert code(fs.create_directory_at, f, "x") == "not-directory"
    assert code(fs.unlink_file_at, f, "x") == "not-directory"


def test_set_size_sync_advise(root, layout):
    f = open_file(root, "hello.txt", flags=RW)
    fs.set_size(None, f, 5)
    assert (layout / "hello.txt").read_bytes() == b"hello"
    fs.set_size(None, f, 7)
    assert (layout / "hello.txt").read_bytes() == b"hello\0\0"
    fs.sync(None, f)
    fs.sync_data(None, f)
    fs.sync(None, root)
    fs.sync_data(None, root)
    for advice in ("normal", "sequential", "random", "will-need", "dont-need", "no-reuse"):
        fs.advise(None, f, 0, 0, advice)
    assert code(fs.advise, f, 2**63, 0, "normal") == "invalid"


def test_sync_flags_are_honoured_and_reported(root):
    f = open_file(root, "hello.txt", flags={"read", "write", "data-integrity-sync"})
    assert fs.get_flags(None, f) == {"read", "write", "data-integrity-sync"}
    assert fs.write(None, f, b"H", 0) == 1


# -- streams ------------------------------------------------------------------------

def test_read_via_stream_advances_and_closes_at_end(root):
    f = open_file(root, "hello.txt")
    stream = fs.read_via_stream(None, f, 6)
    assert stream.read(3) == b"wor"
    assert stream.read(100) == b"ld"
    with pytest.raises(StreamClosed):
        stream.read(1)
    with pytest.raises(StreamClosed):
        stream.read(1)
    assert stream.ready()


def test_streams_through_wasi_io(root, layout):
    f = open_file(root, "hello.txt", flags=RW)
    reader = fs.read_via_stream(None, f, 0)
    assert io_streams.blocking_read(None, reader, 5) == b"hello"
    assert io_streams.skip(None, reader, 1) == 1
    assert io_streams.read(None, reader, 100) == b"world"
    with pytest.raises(ErrorValue) as closed:
        io_streams.read(None, reader, 1)
    assert closed.value.payload == Case("closed")
    writer = fs.write_via_stream(None, f, 6)
    io_streams.blocking_write_and_flush(None, writer, b"W")
    assert io_streams.check_write(None, writer) > 0
    io_streams.write(None, writer, b"ORLD")
    io_streams.flush(None, writer)
    assert (layout / "hello.txt").read_bytes() == b"hello WORLD"


def test_write_via_stream_at_offset_and_append(root, layout):
    f = open_file(root, "hello.txt", flags=WRITE)
    writer = fs.write_via_stream(None, f, 6)
    writer.write(b"W")
    writer.write(b"O")
    appender = fs.append_via_stream(None, f)
    appender.write(b"!!")
    writer.write(b"R")
    appender.write(b"?")
    assert (layout / "hello.txt").read_bytes() == b"hello WORld!!?"
    assert writer.offset == 9


def test_streams_keep_the_file_open_after_the_descriptor_is_dropped(root, layout):
    f = open_file(root, "hello.txt", flags=RW)
    fd = f.fd
    reader = fs.read_via_stream(None, f, 0)
    writer = fs.append_via_stream(None, f)
    f.close()
    assert fd_is_open(fd)
    assert reader.read(5) == b"hello"
    writer.write(b"+")
    reader.close()
    assert fd_is_open(fd)
    writer.close()
    assert not fd_is_open(fd)
    assert (layout / "hello.txt").read_bytes() == b"hello world+"
    with pytest.raises(StreamClosed):
        reader.read(1)
    with pytest.raises(StreamClosed):
        writer.check_write()


def test_dropping_a_descriptor_closes_its_file(root):
    f = open_file(root, "hello.txt")
    fd = f.fd
    assert fd_is_open(fd)
    f.close()
    assert not fd_is_open(fd)


def test_stream_failures_carry_the_filesystem_error_code(root):
    # A stream over a directory's file descriptor: every read fails with EISDIR.
    fake = sandbox.Descriptor(root.share(), directory=False)
    stream = FileInputStream(fake, 0)
    with pytest.raises(StreamFailed) as failure:
        stream.read(10)
    assert failure.value.filesystem_code == "is-directory"
    with pytest.raises(StreamClosed):
        stream.read(10)  # closed after a failure
    stream.close()

    stream = FileInputStream(fake, 0)
    with pytest.raises(ErrorValue) as failed:
        io_streams.read(None, stream, 10)
    case = failed.value.payload
    assert case.tag == "last-operation-failed"
    assert fs.filesystem_error_code(None, case.payload) == "is-directory"
    assert fs.filesystem_error_code(None, object()) is None

    writer = FileOutputStream(sandbox.Descriptor(root.share(), directory=False), 0)
    with pytest.raises(StreamFailed) as failure:
        writer.write(b"x")
    assert failure.value.filesystem_code in ("bad-descriptor", "is-directory")
    with pytest.raises(StreamClosed):
        writer.check_write()
    stream.close()
    writer.close()
    fake.close()


def test_fifo_streams_are_polled_not_blocking(root, layout):
    os.mkfifo(layout / "pipe")
    reader_desc = open_file(root, "pipe", flags=READ)
    writer_desc = open_file(root, "pipe", flags=WRITE)
    assert fs.get_type(None, reader_desc) == "fifo"
    assert fs.stat_at(None, root, NOFOLLOW, "pipe")["type"] == "fifo"
    reader = fs.read_via_stream(None, reader_desc, 0)
    writer = fs.write_via_stream(None, writer_desc, 0)
    assert not reader.ready()
    assert reader.wait_on().fds
    assert reader.read(10) == b""
    assert writer.check_write() > 0
    writer.write(b"ping")
    assert reader.ready()
    assert reader.read(10) == b"ping"
    writer.close()
    writer_desc.close()
    with pytest.raises(StreamClosed):
        reader.read(10)
    reader.close()
    reader_desc.close()


# -- the sandbox --------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/etc/passwd", "/", "..", "../outside/secret.txt", "sub/../../outside/secret.txt",
    "sub/../..", "./../sandbox/hello.txt",
])
def test_paths_cannot_climb_out(root, path):
    assert code(fs.open_at, root, FOLLOW, path, set(), READ) == "not-permitted"
    assert code(fs.stat_at, root, FOLLOW, path) == "not-permitted"
    assert code(fs.stat_at, root, NOFOLLOW, path) == "not-permitted"


@pytest.mark.parametrize("path", [
    "link_abs", "link_abs/passwd", "link_up", "link_up/secret.txt", "link_up_file",
    "link_chain", "link_chain/secret.txt", "link_in/../link_up/secret.txt",
])
def test_symlinks_cannot_lead_out(root, path):
    assert code(fs.open_at, root, FOLLOW, path, set(), READ) == "not-permitted"
    assert code(fs.stat_at, root, FOLLOW, path) == "not-permitted"
    assert code(fs.metadata_hash_at, root, FOLLOW, path) == "not-permitted"


def test_escaping_links_are_refused_as_intermediate_components(root):
    for path in ("link_up/secret.txt", "link_abs/passwd"):
        assert code(fs.stat_at, root, NOFOLLOW, path) == "not-permitted"
        assert code(fs.readlink_at, root, path) == "not-permitted"


def test_mutations_cannot_go_through_escaping_links(root, tmp_path):
    outside = tmp_path / "outside"
    before = sorted(os.listdir(outside))
    assert code(fs.create_directory_at, root, "link_up/made") == "not-permitted"
    assert code(fs.open_at, root, FOLLOW, "link_up/new.txt", {"create"}, RW) == "not-permitted"
    assert code(fs.open_at, root, FOLLOW, "link_up_file", {"truncate"}, RW) == "not-permitted"
    assert code(fs.unlink_file_at, root, "link_up/secret.txt") == "not-permitted"
    assert code(fs.rename_at, root, "hello.txt", root, "link_up/stolen") == "not-permitted"
    assert code(fs.rename_at, root, "link_up/secret.txt", root, "got") == "not-permitted"
    assert code(fs.link_at, root, NOFOLLOW, "link_up/secret.txt", root, "got") == \
        "not-permitted"
    assert code(fs.symlink_at, root, "x", "link_up/planted") == "not-permitted"
    assert code(fs.set_times_at, root, FOLLOW, "link_up_file", NOW, NOW) == "not-permitted"
    assert code(fs.remove_directory_at, root, "link_up/..") == "not-permitted"
    assert sorted(os.listdir(outside)) == before
    assert (outside / "secret.txt").read_bytes() == b"secret"


def test_links_are_operated_on_without_following(root, layout):
    # Without symlink-follow the link itself is the object; it leads nowhere.
    assert fs.stat_at(None, root, NOFOLLOW, "link_up")["type"] == "symbolic-link"
    assert fs.readlink_at(None, root, "link_up") == "../outside"
    # An absolute target is a host path: not revealed (as cap-std/wasmtime).
    assert fs.stat_at(None, root, NOFOLLOW, "link_abs")["type"] == "symbolic-link"
    assert code(fs.readlink_at, root, "link_abs") == "not-permitted"
    assert code(fs.open_at, root, NOFOLLOW, "link_up_file", set(), READ) == "loop"
    fs.unlink_file_at(None, root, "link_up_file")
    assert not os.path.lexists(layout / "link_up_file")
    assert (layout.parent / "outside" / "secret.txt").exists()


def test_absolute_symlink_targets_cannot_be_created(root, layout):
    assert code(fs.symlink_at, root, "/etc/passwd", "planted") == "not-permitted"
    assert not os.path.lexists(layout / "planted")
    # A relative link that escapes may be created, but never followed out.
    fs.symlink_at(None, root, "../outside", "planted")
    assert code(fs.open_at, root, FOLLOW, "planted/secret.txt", set(), READ) == "not-permitted"


def test_links_inside_the_sandbox_work(root):
    f = open_file(root, "link_in/inner.txt", path_flags=NOFOLLOW)
    assert fs.read(None, f, 10, 0) == (b"inner", False)
    f = open_file(root, "link_file", path_flags=FOLLOW)
    assert fs.read(None, f, 5, 0) == (b"hello", False)
    assert fs.stat_at(None, root, FOLLOW, "link_file")["type"] == "regular-file"
    assert fs.stat_at(None, root, NOFOLLOW, "link_file")["type"] == "symbolic-link"
    assert fs.stat_at(None, root, NOFOLLOW, "self/self/self/sub/inner.txt")["size"] == 5
    assert fs.stat_at(None, root, NOFOLLOW, "sub/../hello.txt")["size"] == 11
    assert fs.stat_at(None, root, NOFOLLOW, "sub/./../sub//inner.txt")["size"] == 5
    d = open_file(root, "link_in", path_flags=FOLLOW)
    assert fs.get_type(None, d) == "directory"


def test_symlink_loops(root):
    assert code(fs.stat_at, root, FOLLOW, "loop_a") == "loop"
    assert code(fs.open_at, root, NOFOLLOW, "loop_a/x", set(), READ) == "loop"


def test_a_subdirectory_descriptor_is_its_own_root(root):
    sub = open_file(root, "sub", oflags={"directory"})
    assert fs.get_type(None, sub) == "directory"
    assert fs.stat_at(None, sub, NOFOLLOW, "inner.txt")["size"] == 5
    assert fs.stat_at(None, sub, NOFOLLOW, ".")["type"] == "directory"
    assert code(fs.stat_at, sub, NOFOLLOW, "../hello.txt") == "not-permitted"
    assert code(fs.stat_at, sub, NOFOLLOW, "..") == "not-permitted"


def test_the_empty_path_and_nul_bytes(root):
    assert code(fs.stat_at, root, NOFOLLOW, "") == "no-entry"
    assert code(fs.open_at, root, NOFOLLOW, "hello\0.txt", set(), READ) == "invalid"
    assert code(fs.symlink_at, root, "a\0b", "x") == "invalid"


def test_trailing_slashes(root, layout):
    assert fs.stat_at(None, root, NOFOLLOW, "sub/")["type"] == "directory"
    assert fs.stat_at(None, root, NOFOLLOW, "link_in/")["type"] == "directory"
    assert code(fs.stat_at, root, NOFOLLOW, "hello.txt/") == "not-directory"
    assert code(fs.open_at, root, NOFOLLOW, "hello.txt/", set(), READ) == "not-directory"
    assert code(fs.unlink_file_at, root, "hello.txt/") == "not-directory"
    assert code(fs.open_at, root, NOFOLLOW, "brand-new/", {"create"}, RW) == "is-directory"
    fs.create_directory_at(None, root, "made/")
    assert (layout / "made").is_dir()
    fs.remove_directory_at(None, root, "made/")
    assert not (layout / "made").exists()


# -- permissions --------------------------------------------------------------------

def test_read_only_preopen_refuses_every_mutation(ro, layout):
    assert code(fs.open_at, ro, NOFOLLOW, "hello.txt", set(), RW) == "not-permitted"
    assert code(fs.open_at, ro, NOFOLLOW, "hello.txt", set(), WRITE) == "not-permitted"
    assert code(fs.open_at, ro, NOFOLLOW, "n", {"create"}, READ) == "not-permitted"
    assert code(fs.open_at, ro, NOFOLLOW, "hello.txt", {"truncate"}, READ) == "not-permitted"
    assert code(fs.open_at, ro, NOFOLLOW, "sub", {"directory"},
                {"read", "mutate-directory"}) == "not-permitted"
    assert code(fs.create_directory_at, ro, "d") == "not-permitted"
    assert code(fs.remove_directory_at, ro, "sub") == "not-permitted"
    assert code(fs.unlink_file_at, ro, "hello.txt") == "not-permitted"
    assert code(fs.rename_at, ro, "hello.txt", ro, "renamed") == "not-permitted"
    assert code(fs.link_at, ro, NOFOLLOW, "hello.txt", ro, "linked") == "not-permitted"
    assert code(fs.symlink_at, ro, "hello.txt", "sym") == "not-permitted"
    assert code(fs.set_times_at, ro, NOFOLLOW, "hello.txt", NOW, NOW) == "not-permitted"
    assert code(fs.set_times, ro, NOW, NOW) == "not-permitted"

    f = open_file(ro, "hello.txt")
    assert fs.read(None, f, 5, 0) == (b"hello", False)
    assert code(fs.write, f, b"x", 0) == "not-permitted"
    assert code(fs.write_via_stream, f, 0) == "not-permitted"
    assert code(fs.append_via_stream, f) == "not-permitted"
    assert code(fs.set_size, f, 0) == "not-permitted"
    assert code(fs.set_times, f, NOW, NOW) == "not-permitted"

    sub = open_file(ro, "sub", oflags={"directory"})
    assert fs.get_flags(None, sub) == {"read"}
    assert code(fs.create_directory_at, sub, "d") == "not-permitted"
    assert code(fs.open_at, sub, NOFOLLOW, "inner.txt", set(), RW) == "not-permitted"
    assert fs.read(None, open_file(sub, "inner.txt"), 10, 0) == (b"inner", False)

    # A read-only preopen and a writable one cannot be linked or renamed across.
    assert sorted(os.listdir(layout)) == sorted(
        ["hello.txt", "sub", "full", "link_abs", "link_up", "link_up_file", "link_in",
         "link_file", "link_chain", "self", "loop_a", "loop_b"])
    assert (layout / "hello.txt").read_bytes() == b"hello world"


def test_cross_preopen_mutations_need_both_writable(root, ro, layout):
    assert code(fs.rename_at, root, "hello.txt", ro, "moved") == "not-permitted"
    assert code(fs.rename_at, ro, "hello.txt", root, "moved") == "not-permitted"
    assert code(fs.link_at, root, NOFOLLOW, "hello.txt", ro, "linked") == "not-permitted"
    assert (layout / "hello.txt").exists()


def test_children_inherit_mutate_directory(root, layout):
    # Not requested, as the wasip1 adapter never requests it: still inherited.
    sub = open_file(root, "sub", flags=READ, oflags={"directory"})
    assert fs.get_flags(None, sub) == {"read", "mutate-directory"}
    fs.create_directory_at(None, sub, "deeper")
    assert (layout / "sub" / "deeper").is_dir()
    requested = open_file(root, "sub", flags={"read", "mutate-directory"})
    assert fs.get_flags(None, requested) == {"read", "mutate-directory"}


def test_a_directory_cannot_be_opened_for_writing(root):
    assert code(fs.open_at, root, NOFOLLOW, "sub", set(), RW) == "is-directory"
    assert code(fs.open_at, root, NOFOLLOW, "sub", {"directory", "create"}, READ) == "invalid"
    assert code(fs.open_at, root, NOFOLLOW, "sub", {"directory", "truncate"}, READ) == \
        "invalid"


# -- path operations ----------------------------------------------------------------

def test_open_flags(root, layout):
    assert code(fs.open_at, root, NOFOLLOW, "missing", set(), READ) == "no-entry"
    assert code(fs.open_at, root, NOFOLLOW, "hello.txt", {"create", "exclusive"}, RW) == \
        "exist"
    assert code(fs.open_at, root, NOFOLLOW, "hello.txt", {"directory"}, READ) == \
        "not-directory"
    assert code(fs.open_at, root, NOFOLLOW, "hello.txt/x", set(), READ) == "not-directory"
    assert code(fs.open_at, root, NOFOLLOW, "x" * 300, set(), READ) == "name-too-long"
    f = open_file(root, "fresh", flags=WRITE, oflags={"create", "exclusive"})
    assert fs.stat(None, f)["size"] == 0
    # exclusive creation never follows a final link, even when asked to
    fs.symlink_at(None, root, "target-not-there", "dangling")
    assert code(fs.open_at, root, FOLLOW, "dangling", {"create", "exclusive"}, RW) == "exist"
    assert not (layout / "target-not-there").exists()
    # non-exclusive creation through a dangling link inside creates the target
    open_file(root, "dangling", flags=WRITE, oflags={"create"}, path_flags=FOLLOW)
    assert (layout / "target-not-there").is_file()


def test_directories(root, layout):
    fs.create_directory_at(None, root, "newdir")
    assert code(fs.create_directory_at, root, "newdir") == "exist"
    assert code(fs.create_directory_at, root, "missing/newdir") == "no-entry"
    assert code(fs.remove_directory_at, root, "full") == "not-empty"
    assert code(fs.remove_directory_at, root, "hello.txt") == "not-directory"
    assert code(fs.remove_directory_at, root, "missing") == "no-entry"
    assert code(fs.unlink_file_at, root, "sub") in ("is-directory", "not-permitted")
    assert code(fs.unlink_file_at, root, "missing") == "no-entry"
    fs.remove_directory_at(None, root, "newdir")
    assert not (layout / "newdir").exists()


def test_read_directory(root, layout):
    os.mkfifo(layout / "pipe")
    listing = fs.read_directory(None, root)
    entries = {}
    while (entry := fs.read_directory_entry(None, listing)) is not None:
        entries[entry["name"]] = entry["type"]
    assert fs.read_directory_entry(None, listing) is None
    assert entries == {
        "hello.txt": "regular-file", "sub": "directory", "full": "directory",
        "link_abs": "symbolic-link", "link_up": "symbolic-link",
        "link_up_file": "symbolic-link", "link_in": "symbolic-link",
        "link_file": "symbolic-link", "link_chain": "symbolic-link", "self": "symbolic-link",
        "loop_a": "symbolic-link", "loop_b": "symbolic-link", "pipe": "fifo",
    }
    # the directory can be listed again
    again = fs.read_directory(None, root)
    assert fs.read_directory_entry(None, again) is not None
    sub = open_file(root, "sub", oflags={"directory"})
    only = fs.read_directory(None, sub)
    assert fs.read_directory_entry(None, only) == {"type": "regular-file", "name": "inner.txt"}
    assert fs.read_directory_entry(None, only) is None


def test_names_that_are_not_utf8(root, layout):
    os.close(os.open(os.fsencode(layout / "sub") + b"/bad\xff", os.O_CREAT | os.O_WRONLY))
    sub = open_file(root, "sub", oflags={"directory"})
    listing = fs.read_directory(None, sub)
    results = []
    for _ in range(2):
        try:
            results.append(fs.read_directory_entry(None, listing)["name"])
        except ErrorValue as error:
            results.append(error.payload)
    assert sorted(results) == ["illegal-byte-sequence", "inner.txt"]
    assert fs.read_directory_entry(None, listing) is None
    os.symlink(b"bad\xff", os.fsencode(layout) + b"/badlink")
    assert code(fs.readlink_at, root, "badlink") == "illegal-byte-sequence"


def test_stat_and_stat_at(root, layout):
    os.utime(layout / "hello.txt", ns=(1_500_000_000_123_456_789, 1_600_000_000_000_000_001))
    record = fs.stat_at(None, root, NOFOLLOW, "hello.txt")
    assert record["type"] == "regular-file"
    assert record["size"] == 11
    assert record["link-count"] == 1
    assert record["data-access-timestamp"] == {"seconds": 1_500_000_000,
                                               "nanoseconds": 123_456_789}
    assert record["data-modification-timestamp"] == {"seconds": 1_600_000_000,
                                                     "nanoseconds": 1}
    assert record["status-change-timestamp"]["seconds"] > 1_600_000_000
    assert fs.stat(None, open_file(root, "hello.txt")) == record
    link = fs.stat_at(None, root, NOFOLLOW, "link_file")
    assert link["type"] == "symbolic-link" and link["size"] == len("hello.txt")
    assert fs.stat_at(None, root, FOLLOW, "link_file")["size"] == 11
    assert fs.stat(None, root)["type"] == "directory"
    assert code(fs.stat_at, root, NOFOLLOW, "missing") == "no-entry"


def test_set_times(root, layout):
    stamp = Case("timestamp", {"seconds": 1_000_000_000, "nanoseconds": 5})
    fs.set_times_at(None, root, NOFOLLOW, "hello.txt", stamp, NO_CHANGE)
    after = os.stat(layout / "hello.txt")
    assert after.st_atime_ns == 1_000_000_000_000_000_005
    mtime = after.st_mtime_ns
    fs.set_times_at(None, root, NOFOLLOW, "hello.txt", NO_CHANGE, NO_CHANGE)
    assert os.stat(layout / "hello.txt").st_mtime_ns == mtime
    f = open_file(root, "hello.txt")
    fs.set_times(None, f, NO_CHANGE, stamp)
    after = os.stat(layout / "hello.txt")
    assert after.st_atime_ns == 1_000_000_000_000_000_005
    assert after.st_mtime_ns == 1_000_000_000_000_000_005
    fs.set_times(None, f, NOW, NOW)
    assert os.stat(layout / "hello.txt").st_mtime_ns > 1_600_000_000 * 10**9
    fs.set_times(None, f, stamp, NOW)
    after = os.stat(layout / "hello.txt")
    assert after.st_atime_ns == 1_000_000_000_000_000_005
    assert after.st_mtime_ns > 1_600_000_000 * 10**9
    # on the link itself, not its target
    before = os.stat(layout / "hello.txt").st_mtime_ns
    fs.set_times_at(None, root, NOFOLLOW, "link_file", stamp, stamp)
    assert os.lstat(layout / "link_file").st_mtime_ns == 1_000_000_000_000_000_005
    assert os.stat(layout / "hello.txt").st_mtime_ns == before
    fs.set_times_at(None, root, FOLLOW, "link_file", stamp, stamp)
    assert os.stat(layout / "hello.txt").st_mtime_ns == 1_000_000_000_000_000_005
    huge = Case("timestamp", {"seconds": 2**64 - 1, "nanoseconds": 0})
    assert code(fs.set_times, f, huge, NO_CHANGE) == "overflow"


def test_link_rename_symlink_readlink_unlink(root, layout):
    fs.link_at(None, root, NOFOLLOW, "hello.txt", root, "sub/hard")
    assert os.path.samefile(layout / "hello.txt", layout / "sub" / "hard")
    assert fs.stat_at(None, root, NOFOLLOW, "hello.txt")["link-count"] == 2
    assert code(fs.link_at, root, FOLLOW, "hello.txt", root, "other") == "invalid"
    assert code(fs.link_at, root, NOFOLLOW, "hello.txt", root, "sub/hard") == "exist"
    # link-at on a symlink links the symlink itself
    fs.link_at(None, root, NOFOLLOW, "link_up", root, "link_up_2")
    assert os.readlink(layout / "link_up_2") == "../outside"

    sub = open_file(root, "sub", oflags={"directory"})
    fs.rename_at(None, sub, "hard", root, "renamed")
    assert (layout / "renamed").read_bytes() == b"hello world"
    assert not (layout / "sub" / "hard").exists()
    assert code(fs.rename_at, root, "missing", root, "x") == "no-entry"
    assert code(fs.rename_at, root, "full", root, "sub") == "not-empty"

    fs.symlink_at(None, root, "sub/inner.txt", "to_inner")
    assert fs.readlink_at(None, root, "to_inner") == "sub/inner.txt"
    assert code(fs.symlink_at, root, "x", "to_inner") == "exist"
    assert code(fs.readlink_at, root, "hello.txt") == "invalid"
    fs.unlink_file_at(None, root, "to_inner")
    assert not os.path.lexists(layout / "to_inner")
    assert (layout / "sub" / "inner.txt").exists()


def test_is_same_object_and_metadata_hash(root, layout):
    a = open_file(root, "hello.txt")
    b = open_file(root, "link_file", path_flags=FOLLOW)
    c = open_file(root, "sub/inner.txt")
    assert fs.is_same_object(None, a, b)
    assert not fs.is_same_object(None, a, c)
    assert fs.is_same_object(None, root, open_file(root, "."))
    assert fs.metadata_hash(None, a) == fs.metadata_hash(None, b)
    assert fs.metadata_hash(None, a) == fs.metadata_hash_at(None, root, FOLLOW, "link_file")
    assert fs.metadata_hash(None, a) != fs.metadata_hash_at(None, root, NOFOLLOW, "link_file")
    assert fs.metadata_hash(None, a) != fs.metadata_hash(None, c)
    value = fs.metadata_hash(None, a)
    assert 0 <= value["lower"] < 2**64 and 0 <= value["upper"] < 2**64
    assert value["lower"] != value["upper"]


@pytest.mark.parametrize(("name", "expected"), [
    ("ENOENT", "no-entry"), ("EEXIST", "exist"), ("ENOTDIR", "not-directory"),
    ("EISDIR", "is-directory"), ("ENOTEMPTY", "not-empty"), ("EACCES", "access"),
    ("EPERM", "not-permitted"), ("ELOOP", "loop"), ("ENAMETOOLONG", "name-too-long"),
    ("EINVAL", "invalid"), ("ENOSPC", "insufficient-space"), ("EXDEV", "cross-device"),
    ("EBADF", "bad-descriptor"), ("EROFS", "read-only"), ("ESPIPE", "invalid-seek"),
    ("EMLINK", "too-many-links"), ("EFBIG", "file-too-large"), ("EDQUOT", "quota"),
    ("ETXTBSY", "text-file-busy"), ("EBUSY", "busy"), ("EIO", "io"),
    ("EOVERFLOW", "overflow"), ("EPIPE", "pipe"), ("ENOMEM", "insufficient-memory"),
    ("EOPNOTSUPP", "unsupported"), ("ECONNRESET", "io"),
])
def test_errno_mapping(name, expected):
    assert sandbox.error_code(OSError(getattr(errno, name), "x")) == expected


def test_permission_errors_from_the_host(root, layout):
    if os.geteuid() == 0:
        pytest.skip("root ignores file modes")
    (layout / "locked").write_bytes(b"x")
    os.chmod(layout / "locked", 0)
    try:
        assert code(fs.open_at, root, NOFOLLOW, "locked", set(), READ) == "access"
    finally:
        os.chmod(layout / "locked", 0o600)


def test_context_close_releases_everything(layout):
    context = make_ctx(Preopen(str(layout), "/sandbox"))
    (d, _), = preopens.get_directories(context)
    f = open_file(d, "hello.txt")
    stream = fs.read_via_stream(None, f, 0)
    for obj in (d, f, stream):
        context.table.push(obj, Res.INPUT_STREAM)
    fds = (d.fd, f.fd)
    context.close()
    assert not fd_is_open(fds[1])
    del context  # the store's own reference to the preopen goes with the context
    import gc
    gc.collect()
    assert not fd_is_open(fds[0])
