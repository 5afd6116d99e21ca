"""wasi:io helpers: reads and writes on top of the non-blocking wasi:io/streams
API, waiting on pollables (never busy-spinning). Each ``*_task`` is a task for
`tasks` (to wait beside other work in one poll); its plain namesake blocks,
waiting inside the host (``blocking-read``: one call per chunk).

The bytes move through `bulk`: past the list<u8> wall where the host offers
a way (wasi-tls-host's own worlds), through the stream methods otherwise.

Errors: a closed stream raises StreamClosed (UnexpectedEof from read_exactly),
a failed operation raises StreamFailed carrying the host's debug string.
"""

from componentize_py_types import Err
from wit_world.imports import streams

from . import bulk, close, tasks
from .errors import StreamClosed, StreamFailed, UnexpectedEof

# Largest single read request / write call.  Writes are further limited by the
# budget check-write grants.
READ_CHUNK = 64 * 1024
WRITE_CHUNK = 64 * 1024


def stream_error(err):
    """Convert a raised Err(stream-error) into a wasi_guest exception, dropping
    the wasi:io/error resource it may carry."""
    value = err.value if isinstance(err, Err) else err
    if isinstance(value, streams.StreamError_Closed):
        return StreamClosed()
    if isinstance(value, streams.StreamError_LastOperationFailed):
        error = value.value
        try:
            detail = error.to_debug_string()
        finally:
            close(error)
        # Hosts may append a multi-line backtrace (wasmtime does): keep the
        # first line, e.g. "ConnectionReset".
        lines = detail.strip().splitlines()
        return StreamFailed(detail=lines[0] if lines else "")
    return StreamFailed(detail=repr(value))


def wait(pollable) -> None:
    """Block until ``pollable`` is ready (the pollable is not dropped)."""
    pollable.block()


def wait_for(source) -> None:
    """Subscribe to ``source`` (a stream, socket, future...), block until the
    new pollable is ready, and drop the pollable."""
    p = source.subscribe()
    try:
        p.block()
    finally:
        close(p)


# ---------------------------------------------------------------- reading


def _read(read, input_stream, max_bytes):
    """One read with ``read`` (`bulk.read` or `bulk.blocking_read`): bytes,
    or None at end of stream."""
    try:
        return read(input_stream, max_bytes)
    except Err as e:
        exc = stream_error(e)
        if isinstance(exc, StreamClosed):
            return None
        raise exc from None


def _read_now(input_stream, max_bytes):
    """One non-blocking read: bytes (b"" when none yet), or None at end of stream."""
    return _read(bulk.read, input_stream, max_bytes)


def read_task(read_now, input_stream, deadline=None, what="waiting for data"):
    """Task: the first answer of ``read_now()`` (a non-blocking read of
    ``input_stream``) that is not b"": bytes, or what it answers at the end.
    Bytes that were there at once come back after a bare yield, so every
    other task gets a step between two chunks. With ``deadline`` (from
    `tasks.deadline_in`), `Timeout` if nothing comes before it."""
    waited = False
    while (data := read_now()) == b"":
        yield input_stream if deadline is None else tasks.Until(input_stream, deadline, what)
        waited = True
    if data and not waited:
        yield
    return data


def read_some_task(input_stream, max_bytes=READ_CHUNK, deadline=None):
    """Task: at least one byte (at most ``max_bytes``), or None at end of
    stream; `Timeout` past ``deadline``, if one is given."""
    return (yield from read_task(lambda: _read_now(input_stream, max_bytes), input_stream,
                                 deadline))


def read_some(input_stream, max_bytes=READ_CHUNK):
    """At least one byte (at most ``max_bytes``), or None at end of stream."""
    return _read(bulk.blocking_read, input_stream, max_bytes)


def read_exactly_task(input_stream, n: int):
    """Task: exactly ``n`` bytes; UnexpectedEof if the stream ends early."""
    buf = bytearray()
    while len(buf) < n:
        data = yield from read_some_task(input_stream, min(READ_CHUNK, n - len(buf)))
        if data is None:
            raise UnexpectedEof(buf, n)
        buf += data
    return bytes(buf)


def read_exactly(input_stream, n: int) -> bytes:
    return tasks.run(read_exactly_task(input_stream, n))


def read_all(input_stream, limit=None) -> bytes:
    """Read until end of stream.  With ``limit``, raise StreamFailed once more
    than ``limit`` bytes have arrived."""
    return join_chunks(lambda: read_some(input_stream, READ_CHUNK), limit,
                       lambda: StreamFailed(detail=f"more than {limit} bytes"))


def join_chunks(read_chunk, limit, too_much):
    """The chunks ``read_chunk()`` returns until it returns None or b"",
    joined with one copy at the end; ``too_much()`` is raised once they add
    up to more than ``limit`` (when given)."""
    chunks, size = [], 0
    while data := read_chunk():
        chunks.append(data)
        size += len(data)
        if limit is not None and size > limit:
            raise too_much()
    return b"".join(chunks)


# ---------------------------------------------------------------- writing


def check_write(output_stream) -> int:
    """check-write, converting errors."""
    try:
        return output_stream.check_write()
    except Err as e:
        raise stream_error(e) from None


def flush_task(output_stream):
    """Task: flush and wait until the flush has completed (the stream accepts
    writes again), surfacing any write error."""
    try:
        output_stream.flush()
    except Err as e:
        raise stream_error(e) from None
    while check_write(output_stream) == 0:
        yield output_stream


def flush(output_stream) -> None:
    tasks.run(flush_task(output_stream))


def write_all_task(output_stream, data, flush_after=True):
    """Task: write all of ``data``, respecting check-write budgets, then (by
    default) flush and wait for the flush to complete. Every chunk written,
    the last one too, is followed by a bare yield: a task that answers many
    requests out of one read (a client pipelining them) lets the other
    tasks take a step between two answers, even while the output never
    makes it wait."""
    view = memoryview(data).cast("B")
    off = 0
    while off < len(view):
        budget = check_write(output_stream)
        if budget == 0:
            yield output_stream
            continue
        n = min(budget, WRITE_CHUNK, len(view) - off)
        try:
            bulk.write(output_stream, view[off : off + n])
        except Err as e:
            raise stream_error(e) from None
        off += n
        yield
    if flush_after:
        yield from flush_task(output_stream)


def write_all(output_stream, data, flush_after=True) -> None:
    tasks.run(write_all_task(output_stream, data, flush_after))


def duplex(input_stream, output_stream, data, expect: int) -> bytes:
    """Write ``data`` while reading ``expect`` bytes back, both waits in one
    poll (so a peer that answers while we are still sending cannot deadlock
    us).  Returns the bytes read; raises UnexpectedEof if the input ends first."""
    runner = tasks.Runner()
    runner.spawn(write_all_task(output_stream, data), fatal=True)
    reading = runner.spawn(read_exactly_task(input_stream, expect), fatal=True)
    runner.run()
    return reading.result
