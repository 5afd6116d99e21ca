"""Cases for the upstream client, wasi:tls/types@0.2.0-draft.

Each takes the peer's address (IP:PORT) and the server name to ask for. The
runner's peer decides what the case meets: a good server, one whose
certificate is wrong in one way, one that misbehaves. What the peer saw (a
close_notify, how many bytes) the runner checks on its side.
"""

import hashlib

from componentize_py_types import Err
from conformance_kit import (
    MESSAGE,
    Failed,
    case,
    check,
    debug_string,
    drop,
    echo_line,
    exchange,
    fails_closed,
    forbidden,
    now_s,
    outcome,
    pattern,
    read_exactly,
    read_to_end,
    resolve,
    wait_any,
    wait_ready,
    write_all,
)
from wit_world.imports import wasi_tls_types as tls

from wasi_guest import net

#: A handshake with a peer on loopback.
HANDSHAKE_S = 20.0
#: A host must report a failed or stalled handshake within this.
FAILURE_S = 40.0


class Connection:
    """An established TLS connection and the TCP socket under it."""

    def __init__(self, sock, connection, tls_input, tls_output):
        self.sock = sock
        self.connection = connection
        self.input = tls_input
        self.output = tls_output

    def close_cleanly(self, what="close"):
        """close_notify, then read to the peer's close_notify; no bytes may be left."""
        self.connection.close_output()
        rest, end = read_to_end(self.input, what)
        check(end == "closed", f"{what}: the input ended with {end}, not a clean close")
        check(rest == b"", f"{what}: {len(rest)} unexpected bytes before the end")

    def drop(self):
        drop(self.input, self.output, self.connection, self.sock)


def start(address, server_name):
    """TCP connect and start a handshake: (socket, future-client-streams)."""
    sock, tcp_input, tcp_output = net.connect_tcp(address)
    handshake = tls.ClientHandshake(server_name, tcp_input, tcp_output)
    return sock, tls.ClientHandshake.finish(handshake)


def established(sock, future, what="handshake", seconds=HANDSHAKE_S, keep_future=False):
    """The connection once `future` resolves; Failed if the handshake failed."""
    kind, value = outcome(resolve(future, what, seconds))
    if not keep_future:
        drop(future)
    if kind == "error":
        raise Failed(f"{what} failed: {debug_string(value)}")
    check(kind == "ok", f"{what}: the first get said the value was already taken")
    return Connection(sock, *value)


def connect(address, server_name):
    return established(*start(address, server_name))


@case("handshake")
def handshake(address, server_name, reply="echo"):
    """A trusted server: the handshake succeeds, a line goes through, both close cleanly.
    `reply` is "echo" or "reversed" (`openssl s_server -rev`)."""
    connection = connect(address, server_name)
    write_all(connection.output, MESSAGE)
    expected = MESSAGE if reply == "echo" else MESSAGE[:-1][::-1] + b"\n"
    back = read_exactly(connection.input, len(expected))
    check(back == expected, f"the peer answered {back!r}, expected {expected!r}")
    connection.close_cleanly()
    connection.drop()
    return "connected, line echoed, clean close both ways"


@case("handshake-fails")
def handshake_fails(address, server_name):
    """The handshake must end in an error value (not a trap, not a hang)."""
    started = now_s()
    sock, future = start(address, server_name)
    kind, value = outcome(resolve(future, "the handshake", FAILURE_S))
    seconds = now_s() - started
    if kind == "ok":
        Connection(sock, *value).drop()
        raise Failed("the handshake succeeded")
    check(kind == "error", "the first get said the value was already taken")
    message = debug_string(value)
    drop(future, sock)
    return f"error value after {seconds:.1f} s: {message}", {"seconds": round(seconds, 2)}


@case("echo")
def echo(address, server_name, size):
    """SIZE bytes out and back (around the 16384-byte record limit), then a clean close."""
    size = int(size)
    connection = connect(address, server_name)
    if size == 0:
        # A zero-length read and write are requests like any other.
        check(connection.input.read(0) == b"", "read(0) returned bytes")
        connection.output.check_write()
        connection.output.write(b"")
    data = pattern(size)
    back = exchange(connection.input, connection.output, data, f"echo of {size} bytes")
    if back != data:
        first = next(index for index in range(size) if back[index] != data[index])
        raise Failed(f"the echo differs from byte {first} on")
    connection.close_cleanly()
    connection.drop()
    return f"{size} bytes out and back intact, clean close", {
        "sent": size, "sha256": hashlib.sha256(data).hexdigest()}


@case("get-before-poll")
def get_before_poll(address, server_name):
    """`get` before anything was polled answers (none, or the value) without a trap."""
    sock, future = start(address, server_name)
    first = future.get()
    seen = "none" if first is None else "a value"
    if first is not None:
        kind, value = outcome(first)
        check(kind == "ok", f"the first get answered {kind}")
        drop(future)
        connection = Connection(sock, *value)
    else:
        connection = established(sock, future)
    connection.close_cleanly()
    connection.drop()
    return f"first get: {seen}; the handshake then completed"


@case("get-twice")
def get_twice(address, server_name):
    """After `get` returned the outcome, the next `get` is some(err): already taken."""
    sock, future = start(address, server_name)
    kind, value = outcome(resolve(future, "the handshake", HANDSHAKE_S))
    first = kind
    if kind == "ok":
        connection = Connection(sock, *value)
    elif kind == "error":
        debug_string(value)
        connection = None
    else:
        raise Failed("the first get said the value was already taken")
    second = future.get()
    if second is None:
        raise Failed("the second get answered none, as if still pending")
    again, duplicate = outcome(second)
    if again == "ok":
        Connection(None, *duplicate).drop()
    elif again == "error":
        debug_string(duplicate)
    check(again == "taken", f"the second get returned the outcome again ({again})")
    drop(future)
    if connection is not None:
        connection.close_cleanly()
        connection.drop()
    else:
        drop(sock)
    return f"first get: {first}; second get: some(err), already taken"


@case("fresh-pollables")
def fresh_pollables(address, server_name):
    """Every wait on its own new pollable; two pollables on one stream both fire;
    a pollable taken after the future resolved is ready at once."""
    sock, future = start(address, server_name)
    connection = established(sock, future, keep_future=True)
    late = future.subscribe()
    ready_at_once = late.ready()
    drop(late, future)
    check(ready_at_once, "a pollable of a resolved future was not ready")
    write_all(connection.output, MESSAGE)
    first, second = connection.input.subscribe(), connection.input.subscribe()
    both = wait_ready(first, 20) and wait_ready(second, 20)
    drop(first, second)
    check(both, "two pollables on the TLS input were not both ready once data came")
    check(read_exactly(connection.input, len(MESSAGE)) == MESSAGE, "the echo differs")
    data = pattern(64 * 1024)
    check(exchange(connection.input, connection.output, data) == data, "the echo differs")
    connection.close_cleanly()
    connection.drop()
    return "handshake and 64 KiB echo with a new pollable per wait"


@case("close-output")
def close_output(address, server_name):
    """close-output sends close_notify after the data (the peer checks it), and the
    input stays readable until the peer's own close_notify."""
    connection = connect(address, server_name)
    write_all(connection.output, b"last words\n")
    connection.connection.close_output()
    rest, end = read_to_end(connection.input, "draining after close-output")
    check(rest == b"last words\n", f"drained {rest!r}, expected the echo of the last words")
    check(end == "closed", f"the input ended with {end}, not a clean close")
    connection.drop()
    return "close_notify sent after the data; drained to a clean close"


@case("truncated")
def truncated(address, server_name):
    """The peer closes TCP without close_notify: an error, not a clean end."""
    connection = connect(address, server_name)
    data, end = read_to_end(connection.input, "reading to the truncation")
    connection.drop()
    check(data == b"partial", f"read {data!r} before the end, expected b'partial'")
    check(end != "closed", "the truncated stream ended cleanly (closed), not with an error")
    return f"read the data, then {end}"


@case("tls-closed-after-failure")
def tls_closed_after_failure(address, server_name):
    """After the input reported a failure (here a truncation), the stream is
    closed: "All future operations return `stream-error::closed`" (wasi:io)."""
    connection = connect(address, server_name)
    data, end = read_to_end(connection.input, "reading to the truncation")
    check(end.startswith("last-operation-failed"), f"the truncated input ended with {end}")
    then_closed = fails_closed(lambda: connection.input.read(16))
    connection.drop()
    check(then_closed, "the read after the failure was not closed")
    return "last-operation-failed, then closed"


@case("peer-close-notify")
def peer_close_notify(address, server_name):
    """The peer's close_notify ends the input cleanly, after its data."""
    connection = connect(address, server_name)
    data, end = read_to_end(connection.input, "reading to the peer's close_notify")
    check(data == b"goodbye\n", f"read {data!r}, expected b'goodbye\\n'")
    check(end == "closed", f"the input ended with {end}, not a clean close")
    connection.connection.close_output()
    connection.drop()
    return "data, then a clean end of input"


@case("drop-order")
def drop_order(address, server_name, order):
    """Drop the resources of a connection in `order` (see ORDERS)."""
    return ORDERS[order](address, server_name)


def _after_handshake(sequence):
    def run(address, server_name):
        sock, future = start(address, server_name)
        connection = established(sock, future, keep_future=True)
        resources = {"input": connection.input, "output": connection.output,
                     "connection": connection.connection, "socket": sock, "future": future}
        if "future" not in sequence:
            drop(future)
        drop(*(resources[name] for name in sequence))
        return f"dropped {', '.join(sequence)}"
    return run


def _pending_future(address, server_name):
    """Give up on a handshake: drop its future before it resolves (the peer waits
    a second before it answers), then open another connection."""
    sock, future = start(address, server_name)
    check(future.get() is None, "the handshake resolved before the slow peer answered")
    drop(future, sock)
    connection = connect(address, server_name)
    connection.close_cleanly()
    connection.drop()
    return "dropped the pending future and its socket; a new connection then worked"


def _unfinished_handshake(address, server_name):
    sock, tcp_input, tcp_output = net.connect_tcp(address)
    handshake = tls.ClientHandshake(server_name, tcp_input, tcp_output)
    drop(handshake, sock)
    return "dropped a client-handshake that was never finished, then its socket"


def _stream_before_its_pollable(side):
    def run(address, server_name):
        connection = connect(address, server_name)
        stream = connection.input if side == "input" else connection.output
        pollable = stream.subscribe()
        forbidden(f"drop the TLS {side} stream while its pollable lives")
        drop(stream)
        drop(pollable)
        raise Failed(f"no trap: the host let the TLS {side} stream go before its pollable")
    return run


ORDERS = {
    "streams-then-connection": _after_handshake(["input", "output", "connection", "socket"]),
    "output-first": _after_handshake(["output", "input", "connection", "socket"]),
    "socket-first": _after_handshake(["socket", "input", "output", "connection"]),
    "future-last": _after_handshake(["input", "output", "connection", "future", "socket"]),
    "pending-future": _pending_future,
    "unfinished-handshake": _unfinished_handshake,
    "input-before-its-pollable": _stream_before_its_pollable("input"),
    "output-before-its-pollable": _stream_before_its_pollable("output"),
}


@case("tls-in-tls")
def tls_in_tls(address, server_name, inner_name):
    """A TLS connection over the plaintext streams of another: TLS needs only streams."""
    outer = connect(address, server_name)
    handshake = tls.ClientHandshake(inner_name, outer.input, outer.output)
    inner = established(None, tls.ClientHandshake.finish(handshake), "the inner handshake")
    echo_line(inner.input, inner.output, "the inner echo")
    inner.close_cleanly("closing the inner connection")
    drop(inner.input, inner.output, inner.connection)
    # The outer streams went to the inner connection; the outer one still says goodbye.
    outer.connection.close_output()
    drop(outer.connection, outer.sock)
    return "inner handshake over the outer TLS streams; echo and clean inner close"


@case("concurrent-handshakes")
def concurrent_handshakes(address, server_name, count):
    """COUNT handshakes in flight at once, all polled in one list."""
    count = int(count)
    pending = {index: start(address, server_name) for index in range(count)}
    connections = {}
    deadline = now_s() + 60
    while pending:
        order = sorted(pending)
        pollables = [pending[index][1].subscribe() for index in order]
        try:
            ready = wait_any(pollables, deadline - now_s())
        finally:
            drop(*pollables)
        check(ready, f"{len(pending)} handshakes still pending after 60 s")
        for position in ready:
            index = order[position]
            sock, future = pending.pop(index)
            connections[index] = established(sock, future, f"handshake {index}")
    for index, connection in sorted(connections.items()):
        write_all(connection.output, f"{index}\n".encode())
    for index, connection in sorted(connections.items()):
        line = f"{index}\n".encode()
        back = read_exactly(connection.input, len(line), f"echo on connection {index}")
        check(back == line, f"connection {index} echoed {back!r}")
    for connection in connections.values():
        connection.close_cleanly()
        connection.drop()
    return f"{count} concurrent handshakes, each echoed and closed cleanly"


@case("tls-blocking-write-and-flush")
def tls_blocking_write_and_flush(address, server_name):
    """blocking-write-and-flush of the spec's 4096 bytes on a TLS output stream."""
    connection = connect(address, server_name)
    data = pattern(4096, seed=3)
    try:
        connection.output.blocking_write_and_flush(data)
    except Err as failure:
        raise Failed(f"blocking-write-and-flush failed: {failure.value!r}") from None
    back = read_exactly(connection.input, len(data))
    check(back == data, "the echo differs")
    connection.close_cleanly()
    connection.drop()
    return "4096 bytes written and flushed in one call, echoed intact"

