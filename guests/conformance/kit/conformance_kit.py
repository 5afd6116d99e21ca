"""What every conformance case shares: one result line, exit status 0 or 1,
waits that never outlast a bound, and reading the futures' `get` shapes.

A case is a function registered with `@case("name")` that takes the guest's
arguments after the case name. It returns what it saw (the report's "got")
and optionally facts for the runner to compare with what the peer saw, or
raises `Failed` with the reason. The result is one line on stdout,

    conformance-result {"case": ..., "ok": true, "got": ..., "facts": {...}}

and the exit status is 0 for ok, 1 otherwise. A case that expects a trap
prints `conformance-step forbidden: WHAT` just before the forbidden call, so
the runner can tell a trap there from a trap anywhere else.

Every wait polls the awaited pollable together with a monotonic-clock
timer, so a host that never answers makes the case fail with a reason
instead of hanging; the runner's own time bound is only the last resort.
"""

import json

from componentize_py_types import Err, Ok
from wit_world.imports import error, monotonic_clock, poll, streams

from wasi_guest import cli
from wasi_guest import close as drop  # WASI's term, the one the cases speak in
from wasi_guest.io import READ_CHUNK

RESULT_MARK = "conformance-result "
STEP_MARK = "conformance-step "
NS_PER_S = 1_000_000_000
#: How long one wait for a peer on loopback may take before the case fails.
WAIT_S = 20.0
#: The line the cases echo; the runner's peers (peers.MESSAGE) expect these bytes.
MESSAGE = b"conformance ping\n"

CASES = {}


class Failed(Exception):
    """The behaviour under test was not what the spec asks for."""


def case(name):
    def register(function):
        CASES[name] = function
        return function
    return register


@case("probe")
def probe():
    """Whether a host can run this component at all (the runner asks first)."""
    return "ready"


def check(condition, reason):
    if not condition:
        raise Failed(reason)


def forbidden(what):
    """Announce the call that should trap (see the module doc)."""
    print(f"{STEP_MARK}forbidden: {what}", flush=True)


def now_s():
    return monotonic_clock.now() / NS_PER_S


# -- waiting ---------------------------------------------------------------------------

def wait_any(pollables, seconds):
    """Poll the pollables with a timer of `seconds`: the indices of those that
    were ready, empty if only the timer was."""
    timer = monotonic_clock.subscribe_duration(max(0, int(seconds * NS_PER_S)))
    try:
        ready = poll.poll([*pollables, timer])
    finally:
        drop(timer)
    return [index for index in ready if index < len(pollables)]


def wait_ready(pollable, seconds):
    """Poll `pollable` with a timer of `seconds`; True if the pollable was ready."""
    return bool(wait_any([pollable], seconds))


def wait_for(source, what, seconds=WAIT_S):
    """Wait on a fresh pollable of `source` (dropped afterwards); Failed on timeout."""
    pollable = source.subscribe()
    try:
        ready = wait_ready(pollable, seconds)
    finally:
        drop(pollable)
    check(ready, f"{what}: still not ready after {seconds:.0f} s")


def sleep(seconds):
    timer = monotonic_clock.subscribe_duration(int(seconds * NS_PER_S))
    try:
        poll.poll([timer])
    finally:
        drop(timer)


def resolve(future, what, seconds=WAIT_S):
    """`get` the future (polling it in between) until it answers; return the answer."""
    deadline = now_s() + seconds
    while True:
        answer = future.get()
        if answer is not None:
            return answer
        wait_for(future, what, max(0.0, deadline - now_s()))


def outcome(answer):
    """A future's answer, `option<result<result<T, E>>>` once it is some:
    ("taken", None) for the outer err, ("error", E) or ("ok", T)."""
    if isinstance(answer, Err):
        return "taken", None
    inner = answer.value if isinstance(answer, Ok) else answer
    if isinstance(inner, Err):
        return "error", inner.value
    return "ok", inner.value if isinstance(inner, Ok) else inner


def debug_string(io_error):
    """The first line of an io-error's debug string (wasmtime appends a
    backtrace); the error is dropped."""
    if io_error is None:
        return "(no detail)"
    try:
        text = io_error.to_debug_string()
    finally:
        drop(io_error)
    lines = text.strip().splitlines()
    return lines[0] if lines else "(empty)"


def stream_error_text(value):
    if isinstance(value, streams.StreamError_Closed):
        return "closed"
    if isinstance(value, streams.StreamError_LastOperationFailed):
        return f"last-operation-failed: {debug_string(value.value)}"
    return repr(value)


def fails_closed(call):
    """Whether `call()` fails with stream-error.closed."""
    try:
        call()
    except Err as failure:
        return stream_error_text(failure.value) == "closed"
    return False


# -- streams ---------------------------------------------------------------------------

def write_all(output, data, what="write", seconds=WAIT_S):
    """Write `data` within check-write's permits, then flush and wait for the flush."""
    view = memoryview(data)
    while view:
        permit = check_write(output, what)
        if permit == 0:
            wait_for(output, f"{what}: output never became writable", seconds)
            continue
        chunk = bytes(view[:permit])
        try:
            output.write(chunk)
        except Err as failure:
            raise Failed(f"{what}: write failed: {stream_error_text(failure.value)}") from None
        view = view[len(chunk):]
    flush(output, what, seconds)


def check_write(output, what):
    try:
        return output.check_write()
    except Err as failure:
        raise Failed(f"{what}: check-write failed: {stream_error_text(failure.value)}") from None


def flush(output, what="flush", seconds=WAIT_S):
    try:
        output.flush()
    except Err as failure:
        raise Failed(f"{what}: flush failed: {stream_error_text(failure.value)}") from None
    while check_write(output, what) == 0:
        wait_for(output, f"{what}: the flush never completed", seconds)


def read_exactly(input_stream, size, what="read", seconds=WAIT_S):
    data = bytearray()
    while len(data) < size:
        try:
            chunk = input_stream.read(min(READ_CHUNK, size - len(data)))
        except Err as failure:
            raise Failed(f"{what}: {stream_error_text(failure.value)} after {len(data)} of "
                         f"{size} bytes") from None
        if chunk:
            data += chunk
        else:
            wait_for(input_stream, f"{what}: {len(data)} of {size} bytes", seconds)
    return bytes(data)


def echo_line(input_stream, output, what="echo"):
    """MESSAGE out and the same line back."""
    write_all(output, MESSAGE, what)
    back = read_exactly(input_stream, len(MESSAGE), what)
    check(back == MESSAGE, f"{what}: the peer answered {back!r}")


def read_to_end(input_stream, what="read", seconds=WAIT_S):
    """Read until the stream ends: (bytes, "closed") or (bytes, "last-operation-failed: ...")."""
    data = bytearray()
    while True:
        try:
            chunk = input_stream.read(READ_CHUNK)
        except Err as failure:
            return bytes(data), stream_error_text(failure.value)
        if chunk:
            data += chunk
        else:
            wait_for(input_stream, f"{what}: no end after {len(data)} bytes", seconds)


def exchange(input_stream, output, data, what="exchange", seconds=WAIT_S):
    """Write `data` while reading as many bytes back, in one poll loop, so a
    peer that answers while we still send cannot deadlock us. Returns what was read."""
    view = memoryview(data)
    received = bytearray()
    flushed = False
    while len(received) < len(data) or not flushed:
        if view:
            permit = check_write(output, what)
            if permit:
                chunk = bytes(view[:permit])
                try:
                    output.write(chunk)
                except Err as failure:
                    raise Failed(f"{what}: write failed: "
                                 f"{stream_error_text(failure.value)}") from None
                view = view[len(chunk):]
                if not view:
                    flush(output, what, seconds)
                    flushed = True
        elif not flushed:
            flush(output, what, seconds)
            flushed = True
        try:
            chunk = input_stream.read(READ_CHUNK)
        except Err as failure:
            raise Failed(f"{what}: {stream_error_text(failure.value)} after {len(received)} "
                         f"of {len(data)} bytes") from None
        received += chunk
        if chunk or len(received) >= len(data):
            continue
        waits = [input_stream.subscribe()]
        if view:
            waits.append(output.subscribe())
        try:
            ready = wait_any(waits, seconds)
        finally:
            drop(*waits)
        check(ready, f"{what}: stuck after {len(data) - len(view)} bytes out and "
                     f"{len(received)} back")
    return bytes(received)


def pattern(size, seed=0):
    """Bytes that show a lost, duplicated or reordered byte."""
    return bytes((index * 7 + seed) % 251 for index in range(size))


# -- running ---------------------------------------------------------------------------

def report(name, ok, got, facts):
    line = {"case": name, "ok": ok, "got": got, "facts": facts}
    print(RESULT_MARK + json.dumps(line, sort_keys=True), flush=True)


def main(argv):
    """Run the case named by argv[0] with the rest as its arguments; exit 0 or 1."""
    if not argv or argv[0] not in CASES:
        cli.eprint(f"usage: CASE ARGS...; cases: {' '.join(sorted(CASES))}")
        cli.exit(1)
    name, arguments = argv[0], argv[1:]
    try:
        returned = CASES[name](*arguments)
    except Failed as failure:
        report(name, False, str(failure), {})
        cli.exit(1)
    except Exception as surprise:  # a failed WASI call the case did not expect
        report(name, False, f"unexpected {type(surprise).__name__}: {describe(surprise)}", {})
        cli.exit(1)
    got, facts = returned if isinstance(returned, tuple) else (returned, {})
    report(name, True, got, facts)
    cli.exit(0)


def describe(exception):
    if isinstance(exception, Err):
        value = exception.value
        if isinstance(value, (streams.StreamError_Closed, streams.StreamError_LastOperationFailed)):
            return stream_error_text(value)
        if isinstance(value, error.Error):
            return debug_string(value)
        return repr(value)
    return str(exception)
