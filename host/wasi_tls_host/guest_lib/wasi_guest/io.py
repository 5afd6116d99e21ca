"""wasi:io helpers: blocking-style reads and writes on top of the non-blocking
wasi:io/streams API, waiting on pollables (never busy-spinning).

Errors: a closed stream raises StreamClosed (UnexpectedEof from read_exactly),
a failed operation raises StreamFailed carrying the host's debug string.
"""

from componentize_py_types import Err
from wit_world.imports import poll, streams

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
            error.__exit__(None, None, None)
        # Hosts may append a multi-line backtrace (wasmtime does): keep the
        # first line, e.g. "ConnectionReset".
        lines = detail.strip().splitlines()
        return StreamFailed(detail=lines[0] if lines else "")
    return StreamFailed(detail=repr(value))


def wait(pollable) -> None:
    """Block until ``pollable`` is ready (the pollable is not dropped)."""
    poll.poll([pollable])


def wait_for(source) -> None:
    """Subscribe to ``source`` (a stream, socket, future...), block until the
    new pollable is ready, and drop the pollable."""
    p = source.subscribe()
    try:
        poll.poll([p])
    finally:
        p.__exit__(None, None, None)


# ---------------------------------------------------------------- reading


def read_some(input_stream, max_bytes=READ_CHUNK):
    """Return at least one byte (at most ``max_bytes``), waiting if needed, or
    None at end of stream."""
    while True:
        try:
            data = input_stream.read(max_bytes)
        except Err as e:
            exc = stream_error(e)
            if isinstance(exc, StreamClosed):
                return None
            raise exc from None
        if data:
            return data
        wait_for(input_stream)


def read_exactly(input_stream, n: int) -> bytes:
    """Read exactly ``n`` bytes; raise UnexpectedEof if the stream ends early."""
    buf = bytearray()
    while len(buf) < n:
        data = read_some(input_stream, min(READ_CHUNK, n - len(buf)))
        if data is None:
            raise UnexpectedEof(buf, n)
        buf += data
    return bytes(buf)


def read_all(input_stream, limit=None) -> bytes:
    """Read until end of stream.  With ``limit``, raise StreamFailed once more
    than ``limit`` bytes have arrived."""
    buf = bytearray()
    while True:
        data = read_some(input_stream, READ_CHUNK)
        if data is None:
            return bytes(buf)
        buf += data
        if limit is not None and len(buf) > limit:
            raise StreamFailed(detail=f"more than {limit} bytes")


# ---------------------------------------------------------------- writing


def check_write(output_stream) -> int:
    """check-write, converting errors."""
    try:
        return output_stream.check_write()
    except Err as e:
        raise stream_error(e) from None


def flush(output_stream) -> None:
    """Flush and wait until the flush has completed (the stream accepts writes
    again), surfacing any write error."""
    try:
        output_stream.flush()
    except Err as e:
        raise stream_error(e) from None
    while check_write(output_stream) == 0:
        wait_for(output_stream)


def write_all(output_stream, data, flush_after=True) -> None:
    """Write all of ``data``, respecting check-write budgets, then (by default)
    flush and wait for the flush to complete."""
    view = memoryview(data).cast("B")
    off = 0
    total = len(view)
    while off < total:
        budget = check_write(output_stream)
        if budget == 0:
            wait_for(output_stream)
            continue
        n = min(budget, WRITE_CHUNK, total - off)
        try:
            output_stream.write(bytes(view[off : off + n]))
        except Err as e:
            raise stream_error(e) from None
        off += n
    if flush_after:
        flush(output_stream)


def duplex(input_stream, output_stream, data, expect: int) -> bytes:
    """Write ``data`` while concurrently reading ``expect`` bytes back, with a
    single poll per iteration (so a peer that answers while we are still
    sending cannot deadlock us).  Returns the bytes read; raises UnexpectedEof
    if the input ends first."""
    view = memoryview(data).cast("B")
    sent = 0
    flushing = False
    received = bytearray()
    while len(received) < expect or sent < len(view) or flushing:
        pollables = []
        kinds = []
        if sent < len(view) or flushing:
            pollables.append(output_stream.subscribe())
            kinds.append("w")
        if len(received) < expect:
            pollables.append(input_stream.subscribe())
            kinds.append("r")
        try:
            ready = poll.poll(pollables)
        finally:
            for p in pollables:
                p.__exit__(None, None, None)
        for i in ready:
            if kinds[i] == "w":
                budget = check_write(output_stream)
                if budget == 0:
                    continue
                if flushing:
                    flushing = False
                    continue
                n = min(budget, WRITE_CHUNK, len(view) - sent)
                try:
                    output_stream.write(bytes(view[sent : sent + n]))
                    sent += n
                    if sent == len(view):
                        output_stream.flush()
                        flushing = True
                except Err as e:
                    raise stream_error(e) from None
            else:
                try:
                    chunk = input_stream.read(min(READ_CHUNK, expect - len(received)))
                except Err as e:
                    exc = stream_error(e)
                    if isinstance(exc, StreamClosed):
                        raise UnexpectedEof(received, expect) from None
                    raise exc from None
                received += chunk
    return bytes(received)
