"""wasi:io/streams over the host's non-blocking streams.

The blocking variants are the non-blocking ones plus a wait in the poll
loop. Write budgets are enforced as the spec says: `check-write` grants a
permit, and a `write` larger than the permit left is a trap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ..runtime.calls import WASI_VERSION, Interface
from ..runtime.context import WasiCtx
from ..runtime.errors import ErrorValue, Trap
from ..runtime.poll import Pollable
from ..runtime.resources import Res
from ..runtime.streams import InputStream, OutputStream, StreamClosed, StreamFailed
from ..runtime.values import Case, Child
from .error import IoError

interface = Interface(f"wasi:io/streams@{WASI_VERSION}")
interface.resource("error", Res.IO_ERROR)
interface.resource("pollable", Res.POLLABLE)
interface.resource("input-stream", Res.INPUT_STREAM)
interface.resource("output-stream", Res.OUTPUT_STREAM)

#: Largest chunk one read moves; bigger requests return what fits. Moving
#: list<u8> through wasmtime's C API is fastest per byte at about this size
#: (see bench/README.md); larger lists get slower per byte.
MAX_READ = 64 * 1024
#: The spec's limit for the one-shot blocking writes.
BLOCKING_WRITE_LIMIT = 4096

T = TypeVar("T")


def stream_error(error: Exception) -> ErrorValue:
    """Map a host stream exception to the guest's `stream-error`."""
    if isinstance(error, StreamClosed):
        return ErrorValue(Case("closed"))
    assert isinstance(error, StreamFailed)
    # An HTTP body stream's failure (http.errors.HttpStreamFailed) also
    # carries the error-code that `http-error-code` gives back.
    return ErrorValue(Case("last-operation-failed", IoError(
        error.message, network_code=error.network_code, filesystem_code=error.filesystem_code,
        http_code=getattr(error, "http_code", None))))


def _guarded(operation: Callable[..., T], *args: object) -> T:
    try:
        return operation(*args)
    except (StreamClosed, StreamFailed) as error:
        raise stream_error(error) from None


# -- input-stream --------------------------------------------------------------

@interface.func("[method]input-stream.read")
def read(ctx: WasiCtx, stream: InputStream, length: int) -> bytes:
    # A read of 0 still says `closed` once the stream has ended (the spec).
    return _guarded(stream.read, min(length, MAX_READ))


@interface.func("[method]input-stream.blocking-read")
def blocking_read(ctx: WasiCtx, stream: InputStream, length: int) -> bytes:
    if length == 0:
        return _guarded(stream.read, 0)
    while True:
        data = _guarded(stream.read, min(length, MAX_READ))
        if data:
            return data
        ctx.wait_for(stream)


@interface.func("[method]input-stream.skip")
def skip(ctx: WasiCtx, stream: InputStream, length: int) -> int:
    return len(read(ctx, stream, length))


@interface.func("[method]input-stream.blocking-skip")
def blocking_skip(ctx: WasiCtx, stream: InputStream, length: int) -> int:
    return len(blocking_read(ctx, stream, length))


@interface.func("[method]input-stream.subscribe")
def subscribe_input(ctx: WasiCtx, stream: InputStream) -> Child:
    return Child(Pollable(stream), stream)


# -- output-stream -------------------------------------------------------------

def _check_write(stream: OutputStream) -> int:
    permit = _guarded(stream.check_write)
    stream.permit = permit
    return permit


def _take_permit(stream: OutputStream, length: int) -> None:
    permit = stream.permit
    if length > permit:
        raise Trap(f"write of {length} bytes exceeds the {permit} bytes check-write permitted")
    stream.permit = permit - length


def _write(stream: OutputStream, data: bytes) -> None:
    _take_permit(stream, len(data))
    if data:
        _guarded(stream.write, data)


@interface.func("[method]output-stream.check-write")
def check_write(ctx: WasiCtx, stream: OutputStream) -> int:
    return _check_write(stream)


@interface.func("[method]output-stream.write")
def write(ctx: WasiCtx, stream: OutputStream, contents: bytes) -> None:
    _write(stream, contents)


@interface.func("[method]output-stream.flush")
def flush(ctx: WasiCtx, stream: OutputStream) -> None:
    _guarded(stream.flush)


@interface.func("[method]output-stream.blocking-flush")
def blocking_flush(ctx: WasiCtx, stream: OutputStream) -> None:
    _guarded(stream.flush)
    _wait_writable(ctx, stream)


@interface.func("[method]output-stream.blocking-write-and-flush")
def blocking_write_and_flush(ctx: WasiCtx, stream: OutputStream, contents: bytes) -> None:
    if len(contents) > BLOCKING_WRITE_LIMIT:
        raise Trap(f"blocking-write-and-flush takes at most {BLOCKING_WRITE_LIMIT} bytes, "
                   f"got {len(contents)}")
    _write_all(ctx, stream, contents)
    blocking_flush(ctx, stream)


@interface.func("[method]output-stream.write-zeroes")
def write_zeroes(ctx: WasiCtx, stream: OutputStream, length: int) -> None:
    _take_permit(stream, length)  # before allocating: the length is the guest's
    if length:
        _guarded(stream.write, bytes(length))


@interface.func("[method]output-stream.blocking-write-zeroes-and-flush")
def blocking_write_zeroes_and_flush(ctx: WasiCtx, stream: OutputStream, length: int) -> None:
    if length > BLOCKING_WRITE_LIMIT:
        raise Trap(f"blocking-write-zeroes-and-flush takes at most {BLOCKING_WRITE_LIMIT} "
                   f"bytes, got {length}")
    _write_all(ctx, stream, bytes(length))
    blocking_flush(ctx, stream)


@interface.func("[method]output-stream.splice")
def splice(ctx: WasiCtx, dst: OutputStream, src: InputStream, length: int) -> int:
    budget = min(length, _guarded(dst.check_write), MAX_READ)
    if budget == 0:
        return 0
    data = _guarded(src.read, budget)
    if data:
        _guarded(dst.write, data)
    return len(data)


@interface.func("[method]output-stream.blocking-splice")
def blocking_splice(ctx: WasiCtx, dst: OutputStream, src: InputStream, length: int) -> int:
    if length == 0:
        return 0
    while True:
        _wait_writable(ctx, dst)
        moved = splice(ctx, dst, src, length)
        if moved:
            return moved
        ctx.wait_for(src)


@interface.func("[method]output-stream.subscribe")
def subscribe_output(ctx: WasiCtx, stream: OutputStream) -> Child:
    return Child(Pollable(stream), stream)


def _wait_writable(ctx: WasiCtx, stream: OutputStream) -> int:
    """Wait until the stream takes bytes again (any flush has completed)."""
    while True:
        permit = _guarded(stream.check_write)
        if permit:
            return permit
        ctx.wait_for(stream)


def _write_all(ctx: WasiCtx, stream: OutputStream, data: bytes) -> None:
    stream.permit = 0
    view = memoryview(data)
    while view:
        permit = _wait_writable(ctx, stream)
        chunk = bytes(view[:permit])
        _guarded(stream.write, chunk)
        view = view[permit:]
