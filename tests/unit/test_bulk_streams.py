"""wasi-tls-host:io/bulk against the stream contract, on every kind of host stream.

The bulk functions must be the wasi:io functions with the bytes in a
`chunk`: these tests drive them as a guest does (the interface functions
with a real context) over the stream contract's loops (a pipe, TCP, TLS
1.2/1.3 as client and as server), with hypothesis choosing the bytes and
where writes and reads split them, and check the same results, budgets,
errors and traps as `io.streams`. The chunk's way through the codec (a
variant holding a string made from bytes) is checked with the type from a
real guest.
"""

from __future__ import annotations

import binascii
import io
import socket
import struct
from ctypes import byref

import pytest
import wasmtime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_stream_contract import loop, read_exactly, stream_error, write_all  # noqa: F401
from wasmtime import _ffi as ffi
from wasmtime import component as wc

from wasi_tls_host.config import HostConfig
from wasi_tls_host.io import bulk, poll, streams
from wasi_tls_host.runtime import codec
from wasi_tls_host.runtime.context import WasiCtx
from wasi_tls_host.runtime.errors import ErrorValue, Interrupted, Trap
from wasi_tls_host.runtime.poll import StopSwitch
from wasi_tls_host.runtime.streams import Pipe
from wasi_tls_host.runtime.values import Case
from wasi_tls_host.sockets.tcp import TcpSocket

#: Bytes of both kinds: any byte (hex), and bytes below 0x80 (ascii).
PAYLOADS = st.one_of(st.binary(max_size=200_000),
                     st.binary(max_size=200_000).map(lambda data: bytes(b & 0x7F for b in data)))
SPLITS = st.lists(st.integers(min_value=1, max_value=70_000), min_size=1, max_size=8)


def as_guest_sees(chunk: Case) -> bytes:
    """What the guest library makes of a chunk the host returned."""
    if chunk.tag == "ascii":
        assert chunk.payload.isascii()
        return chunk.payload
    assert chunk.tag == "hex"
    return binascii.a2b_hex(chunk.payload)


def as_guest_sends(data: bytes) -> Case:
    """The chunk the guest library makes, as the codec lifts it (str payload)."""
    if data.isascii():
        return Case("ascii", data.decode("ascii"))
    return Case("hex", data.hex())


def bulk_read_exactly(ctx, input_stream, size: int, splits: list[int]) -> bytes:
    """Reads of the sizes in `splits` in turn, alternating the two forms."""
    received, turn = bytearray(), 0
    while len(received) < size:
        want = splits[turn % len(splits)]
        turn += 1
        if turn % 2:
            data = as_guest_sees(bulk.blocking_read(ctx, input_stream, want))
            assert data
        else:
            data = as_guest_sees(bulk.read(ctx, input_stream, want))
            if not data:
                poll.block(ctx, streams.subscribe_input(ctx, input_stream).obj)
        assert len(data) <= min(want, streams.MAX_READ)
        received += data
    return bytes(received)


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=PAYLOADS, write_splits=SPLITS, read_splits=SPLITS)
def test_bytes_cross_intact_however_they_are_split(loop, data, write_splits,  # noqa: F811
                                                   read_splits):
    """Writes and reads take turns in one thread, as a guest's tasks would:
    no loop has to hold the whole payload at once."""
    ctx, pair = loop
    received = bytearray()
    done = turn = 0
    while len(received) < len(data):
        permit = streams.check_write(ctx, pair.output) if done < len(data) else 0
        if permit:
            piece = min(write_splits[turn % len(write_splits)], permit, len(data) - done)
            bulk.write(ctx, pair.output, as_guest_sends(data[done:done + piece]))
            streams.flush(ctx, pair.output)
            done += piece
        want = read_splits[turn % len(read_splits)]
        turn += 1
        got = as_guest_sees(bulk.read(ctx, pair.input, want))
        assert len(got) <= want
        received += got
        if not got and not permit:
            poll.poll(ctx, [streams.subscribe_input(ctx, pair.input).obj,
                            streams.subscribe_output(ctx, pair.output).obj])
    assert bytes(received) == data


def test_the_host_picks_ascii_only_when_every_byte_is_below_0x80():
    pipe = Pipe()
    ctx = WasiCtx(HostConfig())
    for data, form in ((b"GET / HTTP/1.1\r\n", "ascii"), (b"\x00\x7f", "ascii"),
                       (b"caf\xc3\xa9", "hex"), (b"\x80", "hex"), (b"", "ascii")):
        pipe.output.write(data)
        chunk = bulk.read(ctx, pipe.input, 100)
        assert chunk.tag == form
        assert as_guest_sees(chunk) == data
    ctx.close()


def test_an_embedders_file_that_reads_into_other_buffers_still_gives_bytes():
    class ReadsBytearrays(io.RawIOBase):
        def readable(self):
            return True

        def read(self, size=-1):
            return bytearray(b"plain")
    ctx = WasiCtx(HostConfig(stdin=ReadsBytearrays()))
    chunk = bulk.read(ctx, ctx.stdin, 10)
    assert chunk == Case("ascii", b"plain")
    assert type(chunk.payload) is bytes  # what the codec lowers as a string
    ctx.close()


def test_zero_length_reads_return_at_once(loop):  # noqa: F811
    ctx, pair = loop
    assert bulk.read(ctx, pair.input, 0) == Case("ascii", b"")
    assert bulk.blocking_read(ctx, pair.input, 0) == Case("ascii", b"")


def test_a_read_never_returns_more_than_the_host_moves_a_call():
    pipe = Pipe(capacity=1 << 20)
    pipe.output.write(b"\xff" * 200_000)
    ctx = WasiCtx(HostConfig())
    assert len(as_guest_sees(bulk.read(ctx, pipe.input, 1 << 62))) == streams.MAX_READ
    assert len(as_guest_sees(bulk.blocking_read(ctx, pipe.input, 2**64 - 1))) == streams.MAX_READ
    ctx.close()


def test_the_end_of_the_stream_is_closed_every_time(loop):  # noqa: F811
    ctx, pair = loop
    write_all(ctx, pair.output, b"last words")
    pair.end_output()
    assert bulk_read_exactly(ctx, pair.input, 10, [3, 100]) == b"last words"
    for call in (lambda: bulk.blocking_read(ctx, pair.input, 10),
                 lambda: bulk.read(ctx, pair.input, 10),
                 lambda: bulk.read(ctx, pair.input, 0),
                 lambda: bulk.blocking_read(ctx, pair.input, 0)):
        assert stream_error(call) == Case("closed")


def test_write_beyond_the_permit_traps_as_the_standard_write_does(loop):  # noqa: F811
    ctx, pair = loop
    permit = streams.check_write(ctx, pair.output)
    with pytest.raises(Trap, match=f"write of {permit + 1} bytes exceeds the {permit} bytes"):
        bulk.write(ctx, pair.output, as_guest_sends(b"\x01" * (permit + 1)))
    # The permit counts decoded bytes: 2 * permit hex digits are `permit` bytes.
    bulk.write(ctx, pair.output, Case("hex", "ab" * permit))
    with pytest.raises(Trap, match="exceeds the 0 bytes"):
        bulk.write(ctx, pair.output, Case("ascii", "x"))
    streams.flush(ctx, pair.output)
    assert read_exactly(ctx, pair.input, permit) == b"\xab" * permit


@pytest.mark.parametrize(("chunk", "message"), [
    (Case("hex", "abc"), "a hex chunk does not decode: Odd-length string"),
    (Case("hex", "zz"), "a hex chunk does not decode: Non-hexadecimal digit found"),
    (Case("hex", "\u00e9\u00e9"), "a hex chunk does not decode"),
    (Case("ascii", "caf\u00e9"), "an ascii chunk holds 'é' at 3, which is above 0x7f"),
])
def test_a_chunk_that_does_not_decode_traps_before_anything_is_written(chunk, message):
    pipe = Pipe()
    ctx = WasiCtx(HostConfig())
    streams.check_write(ctx, pipe.output)
    with pytest.raises(Trap, match=message):
        bulk.write(ctx, pipe.output, chunk)
    assert pipe.buffer == b""
    ctx.close()


def test_hex_digits_in_either_case_are_taken():
    pipe = Pipe()
    ctx = WasiCtx(HostConfig())
    streams.check_write(ctx, pipe.output)
    bulk.write(ctx, pipe.output, Case("hex", "aBcD"))
    assert pipe.buffer == b"\xab\xcd"
    ctx.close()


def test_a_write_after_the_output_ended_fails_as_the_standard_write_does(loop):  # noqa: F811
    ctx, pair = loop
    streams.check_write(ctx, pair.output)  # a permit from before the end
    pair.end_output()

    def outcome(write):
        try:
            return write()
        except ErrorValue as error:
            return error.payload
    standard = outcome(lambda: streams.write(ctx, pair.output, b"late"))
    assert outcome(lambda: bulk.write(ctx, pair.output, Case("ascii", "late"))) == standard
    assert outcome(lambda: bulk.write(ctx, pair.output, Case("hex", "fe"))) == standard
    assert stream_error(lambda: streams.check_write(ctx, pair.output)) == Case("closed")


def test_a_failed_stream_is_the_same_error_value_as_the_standard_read():
    """A peer that resets: bulk.read gives last-operation-failed with the error."""
    listener = socket.create_server(("127.0.0.1", 0))
    sock = socket.create_connection(listener.getsockname())
    sock.setblocking(False)
    peer, _ = listener.accept()
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()  # RST
    listener.close()
    ctx = WasiCtx(HostConfig())
    tcp = TcpSocket(sock, "connected")
    input_stream, _ = (child.obj for child in tcp.connected_streams())
    poll.block(ctx, streams.subscribe_input(ctx, input_stream).obj)
    error = stream_error(lambda: bulk.read(ctx, input_stream, 10))
    assert error.tag == "last-operation-failed"
    assert error.payload.network_code == "connection-reset"
    ctx.close()


# -- forward: stream to stream inside the host ----------------------------------------

def test_forward_moves_everything_until_the_source_ends(loop):  # noqa: F811
    ctx, pair = loop
    data = bytes(range(256)) * 200  # what a pipe holds: nobody reads while we write
    write_all(ctx, pair.output, data)
    pair.end_output()
    sink = Pipe(capacity=1 << 20)
    assert bulk.forward(ctx, pair.input, sink.output, 2**64 - 1) == len(data)
    assert bytes(sink.buffer) == data


def test_forward_stops_at_its_length_and_leaves_the_rest():
    source, sink = Pipe(capacity=1 << 20), Pipe(capacity=1 << 20)
    source.output.write(b"a" * 100_000 + b"b" * 10)
    ctx = WasiCtx(HostConfig())
    assert bulk.forward(ctx, source.input, sink.output, 100_000) == 100_000
    assert bytes(sink.buffer) == b"a" * 100_000
    assert bytes(source.buffer) == b"b" * 10
    assert bulk.forward(ctx, source.input, sink.output, 0) == 0
    ctx.close()


def test_forward_into_a_closed_sink_is_closed():
    source, sink = Pipe(), Pipe()
    source.output.write(b"data")
    sink.input.close()  # nobody reads: the sink is closed
    ctx = WasiCtx(HostConfig())
    assert stream_error(lambda: bulk.forward(ctx, source.input, sink.output, 10)) == \
        Case("closed")
    ctx.close()


def test_forward_from_a_failed_source_is_its_failure():
    listener = socket.create_server(("127.0.0.1", 0))
    sock = socket.create_connection(listener.getsockname())
    sock.setblocking(False)
    peer, _ = listener.accept()
    peer.sendall(b"before the reset")
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()
    listener.close()
    ctx = WasiCtx(HostConfig())
    input_stream, _ = (child.obj for child in TcpSocket(sock, "connected").connected_streams())
    sink = Pipe(capacity=1 << 20)
    error = stream_error(lambda: bulk.forward(ctx, input_stream, sink.output, 2**64 - 1))
    assert error.tag == "last-operation-failed"
    assert error.payload.network_code == "connection-reset"
    ctx.close()


def test_a_stop_request_ends_a_forward_that_never_waits():
    source, sink = Pipe(capacity=1 << 20), Pipe(capacity=1 << 20)
    source.output.write(b"x" * 1000)
    ctx = WasiCtx(HostConfig())
    ctx.stop = StopSwitch()
    ctx.stop.request("Ctrl-C")
    with pytest.raises(Interrupted, match="Ctrl-C"):
        bulk.forward(ctx, source.input, sink.output, 1000)
    assert sink.buffer == b""
    ctx.stop.close()
    ctx.close()


# -- the chunk through the codec ----------------------------------------------------

@pytest.fixture(scope="module")
def chunk_types(guests):
    """`read`'s result and `write`'s parameter, as a real guest imports them."""
    engine = wasmtime.Engine()
    component = wc.Component.from_file(engine, str(guests["bulk-probe"]))
    for name, item in component.type.imports(engine).items():
        if name.startswith("wasi-tls-host:io/bulk@"):
            functions = item.ty.exports(engine)
            return functions["read"].ty.result, functions["write"].ty.params[1][1]
    raise LookupError("bulk-probe does not import wasi-tls-host:io/bulk")


def roundtrip(ty, value):
    ctx = WasiCtx(HostConfig())
    scope = codec.CallScope(wasmtime.Store(wasmtime.Engine())._context(), ctx.table)
    cell = codec.Val()
    codec.lowerer(ty, lambda resource_type: 2)(scope, value, cell)
    try:
        return codec.lifter(ty)(scope, cell)
    finally:
        ffi.wasmtime_component_val_delete(byref(cell))
        ctx.close()


@settings(max_examples=50, deadline=None)
@given(data=PAYLOADS)
def test_a_chunk_the_host_returns_reaches_the_guest_as_the_bytes(chunk_types, data):
    result_type, _ = chunk_types
    lifted = roundtrip(result_type, bulk.chunk(data))
    assert lifted.value.tag == ("ascii" if data.isascii() else "hex")
    assert bulk.bytes_of(lifted.value) == data


def test_the_string_codec_takes_ascii_bytes_and_refuses_others():
    ty = wc.String()
    assert roundtrip(ty, b"plain text") == "plain text"
    assert roundtrip(ty, b"") == ""
    assert roundtrip(ty, "na\u00efve \U0001f600") == "na\u00efve \U0001f600"
    with pytest.raises(ValueError, match="got bytes that are not ASCII"):
        roundtrip(ty, b"caf\xc3\xa9")
    with pytest.raises(ValueError, match="got bytearray"):
        roundtrip(ty, bytearray(b"text"))
