"""WASI 0.2 io and sockets cases: the behaviours the TLS guests rely on, on
plain TCP to a peer on loopback (or none). Each cites the WIT text it checks
in its doc string."""

from componentize_py_types import Err
from conformance_kit import (
    Failed,
    case,
    check,
    drop,
    fails_closed,
    flush,
    forbidden,
    now_s,
    pattern,
    read_exactly,
    read_to_end,
    wait_ready,
    write_all,
)
from wit_world.imports import monotonic_clock, network, poll, tcp

from wasi_guest import net

MS = 1_000_000


@case("check-write")
def check_write_budget(address):
    """check-write: "Returns the number of bytes permitted for the next call to
    `write`"; a write of that many is accepted, and the output's pollable says
    when it takes more. (Peer: TCP echo.)"""
    sock, tcp_input, tcp_output = net.connect_tcp(address)
    permit = tcp_output.check_write()
    check(permit > 0, "check-write permitted 0 bytes on a fresh connection")
    size = min(permit, 64 * 1024)
    data = pattern(size)
    tcp_output.write(data)
    flush(tcp_output, "flush after the permitted write")
    back = read_exactly(tcp_input, size)
    check(back == data, "the echo differs")
    drop(tcp_input, tcp_output, sock)
    return f"check-write permitted {permit} bytes; a write of {size} went through"


@case("write-beyond-permit")
def write_beyond_permit(address):
    """write: "Calling `write` with more bytes than this function has permitted
    will trap." (Peer: TCP echo.)"""
    sock, tcp_input, tcp_output = net.connect_tcp(address)
    permit = tcp_output.check_write()
    check(permit <= 64 << 20, f"a permit of {permit} bytes is too large to exceed here")
    forbidden(f"write {permit + 1} bytes after check-write permitted {permit}")
    tcp_output.write(bytes(permit + 1))
    raise Failed(f"no trap: a write of {permit + 1} bytes beyond a permit of {permit} went through")


@case("blocking-write-and-flush")
def blocking_write_and_flush(address):
    """blocking-write-and-flush: "Perform a write of up to 4096 bytes, and then
    flush the stream." (Peer: TCP echo.)"""
    sock, tcp_input, tcp_output = net.connect_tcp(address)
    data = pattern(4096, seed=5)
    tcp_output.blocking_write_and_flush(data)
    back = read_exactly(tcp_input, len(data))
    check(back == data, "the echo differs")
    drop(tcp_input, tcp_output, sock)
    return "4096 bytes written and flushed in one call, echoed intact"


@case("subscribe")
def subscribe(address):
    """input-stream.subscribe resolves "once either the specified stream has bytes
    available to read or the other end of the stream has been closed";
    output-stream.subscribe: "If the stream is closed, this pollable is always
    ready immediately." (Peer: sends N bytes when asked, then closes.)"""
    sock, tcp_input, tcp_output = net.connect_tcp(address)
    readable = tcp_input.subscribe()
    check(not readable.ready(), "the input's pollable was ready before the peer sent anything")
    writable = tcp_output.subscribe()
    check(wait_ready(writable, 5), "the output's pollable of a fresh connection was not ready")
    drop(writable)
    write_all(tcp_output, b"send 5\n")
    check(wait_ready(readable, 20), "the input's pollable never fired when the peer sent")
    check(read_exactly(tcp_input, 5) == pattern(5), "the peer's bytes differ")
    rest, end = read_to_end(tcp_input, "reading to the peer's close")
    check((rest, end) == (b"", "closed"), f"after the data: {rest!r}, then {end}")
    check(readable.ready(), "the input's pollable was not ready once the input had ended")
    drop(readable)
    sock.shutdown(tcp.ShutdownType.SEND)
    closed = tcp_output.subscribe()
    at_once = closed.ready()
    drop(closed)
    check(at_once, "the pollable of a closed output was not ready at once")
    drop(tcp_input, tcp_output, sock)
    return "input pollable: not ready, then data, then the end; output pollable: ready, " \
           "and ready at once when closed"


@case("read-zero-when-closed")
def read_zero_when_closed(address):
    """read: "When the caller gives a `len` of 0, it represents a request to read
    0 bytes. If the stream is still open, this call should succeed and return
    an empty list, or otherwise fail with `closed`." (Peer: sends nothing when
    asked for 0 bytes, then ends its side.)"""
    sock, tcp_input, tcp_output = net.connect_tcp(address)
    check(tcp_input.read(0) == b"", "read(0) on an open stream did not return an empty list")
    write_all(tcp_output, b"send 0\n")
    rest, end = read_to_end(tcp_input, "reading to the peer's end")
    check((rest, end) == (b"", "closed"), f"the input gave {rest!r}, then {end}")
    at_end = fails_closed(lambda: tcp_input.read(0))
    drop(tcp_input, tcp_output, sock)
    check(at_end, "read(0) on a closed stream did not fail with closed")
    return "read(0): empty while open, closed once closed"


@case("closed-after-failure")
def closed_after_failure(address):
    """stream-error.last-operation-failed: "After this, the stream will be closed.
    All future operations return `stream-error::closed`." (Peer: resets the
    connection when asked.)"""
    sock, tcp_input, tcp_output = net.connect_tcp(address)
    write_all(tcp_output, b"reset\n")
    data, end = read_to_end(tcp_input, "reading to the reset")
    check(end.startswith("last-operation-failed"), f"a reset connection ended with {end}")
    then = "closed" if fails_closed(lambda: tcp_input.read(16)) else "not closed"
    drop(tcp_input, tcp_output, sock)
    check(then == "closed", "the read after the failure did not fail with closed")
    return f"{end}, then closed"


@case("poll-mixed")
def poll_mixed(address):
    """poll returns the indices of the ready pollables in a list of stream and
    clock pollables; "A timeout can be implemented by adding a pollable from
    the wasi-clocks API to the list." (Peer: sends N bytes when asked.)"""
    sock, tcp_input, tcp_output = net.connect_tcp(address)
    readable = tcp_input.subscribe()
    short = monotonic_clock.subscribe_duration(200 * MS)
    started = now_s()
    ready = poll.poll([readable, short])
    waited = now_s() - started
    drop(short)
    check(ready == [1], f"with no data, poll answered {ready}, expected [1] (the timer)")
    check(waited >= 0.19, f"the 200 ms timer fired after {waited * 1000:.0f} ms")
    write_all(tcp_output, b"send 3\n")
    long = monotonic_clock.subscribe_duration(20_000 * MS)
    ready = poll.poll([long, readable])
    check(ready == [1], f"with data coming, poll answered {ready}, expected [1] (the input)")
    writable = tcp_output.subscribe()
    ready = poll.poll([readable, long, writable])
    check(0 in ready and 1 not in ready, f"poll answered {ready} for [input, 20 s timer, output]")
    drop(writable, long, readable)
    check(read_exactly(tcp_input, 3) == pattern(3), "the peer's bytes differ")
    drop(tcp_input, tcp_output, sock)
    return "poll picked the timer, then the input, never the unexpired timer"


@case("poll-empty")
def poll_empty():
    """poll: "This function traps if ... the list is empty"."""
    forbidden("poll an empty list")
    poll.poll([])
    raise Failed("no trap: poll of an empty list returned")


@case("shutdown-send")
def shutdown_send(address):
    """shutdown(send): "The output-stream associated with this socket will be
    closed and a FIN packet will be sent"; the input still reads. (Peer: counts
    bytes until end of stream, then answers.)"""
    sock, tcp_input, tcp_output = net.connect_tcp(address)
    write_all(tcp_output, pattern(1000))
    permit = tcp_output.check_write()
    sock.shutdown(tcp.ShutdownType.SEND)
    # write "returns Err(closed) without writing if the stream has closed since
    # the last call to check-write provided a permit".
    check(permit == 0 or fails_closed(lambda: tcp_output.write(b"x")),
          "a write after shutdown(send), within the earlier permit, was not closed")
    check(fails_closed(tcp_output.check_write), "check-write after shutdown(send) was not closed")
    answer, end = read_to_end(tcp_input, "reading the peer's answer")
    check(answer == b"received 1000\n", f"the peer answered {answer!r}")
    check(end == "closed", f"the input ended with {end}")
    drop(tcp_input, tcp_output, sock)
    return "output closed, the peer saw the end of stream, the input still read its answer"


@case("shutdown-receive")
def shutdown_receive(address):
    """shutdown(receive): "The input-stream associated with this socket will be
    closed." (Peer: TCP echo.)"""
    sock, tcp_input, tcp_output = net.connect_tcp(address)
    sock.shutdown(tcp.ShutdownType.RECEIVE)
    check(fails_closed(lambda: tcp_input.read(16)), "a read after shutdown(receive) was not closed")
    write_all(tcp_output, b"still writable\n")
    drop(tcp_input, tcp_output, sock)
    return "input closed; output still writable"


@case("shutdown-twice")
def shutdown_twice(address):
    """shutdown: "This function is idempotent; shutting down a direction more than
    once has no effect and returns `ok`." (Peer: reads to the end and keeps its
    side open, so the connection is still there to shut down.)"""
    sock, tcp_input, tcp_output = net.connect_tcp(address)
    for number, kind in enumerate(("SEND", "SEND", "BOTH", "BOTH"), 1):
        try:
            sock.shutdown(getattr(tcp.ShutdownType, kind))
        except Err as failure:
            raise Failed(f"shutdown call {number} ({kind.lower()}) failed: "
                         f"{failure.value}") from None
    drop(tcp_input, tcp_output, sock)
    return "send, send, both, both: all ok"


@case("shutdown-unconnected")
def shutdown_unconnected():
    """shutdown: "`invalid-state`: The socket is not in the `connected` state." """
    sock = net.create_tcp_socket(network.IpAddressFamily.IPV4)
    try:
        sock.shutdown(tcp.ShutdownType.BOTH)
    except Err as failure:
        code = failure.value
        drop(sock)
        check(code == network.ErrorCode.INVALID_STATE, f"error {code}, expected invalid-state")
        return "error value invalid-state"
    drop(sock)
    raise Failed("shutdown of an unconnected socket returned ok")

