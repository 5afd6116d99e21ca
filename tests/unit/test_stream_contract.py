"""One stream contract, checked against every kind of host stream.

The checker drives `wasi:io/streams` exactly as a guest does (the interface
functions, with a real context) over an in-memory pipe, a loopback TCP
connection to a Python echo peer, TLS 1.2/1.3 to a Python `ssl` echo
server, and TLS 1.2/1.3 with the host as the server for a Python `ssl`
echoing client. Bytes written to the output stream must come back on the input
stream, intact, with the spec's budgets, traps and end-of-stream rules.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from wasi_tls_host.config import HostConfig
from wasi_tls_host.io import poll, streams
from wasi_tls_host.runtime.context import WasiCtx
from wasi_tls_host.runtime.errors import ErrorValue, Trap
from wasi_tls_host.runtime.streams import FileInput, FileOutput, Pipe, StreamClosed
from wasi_tls_host.runtime.values import Case
from wasi_tls_host.sockets import tcp as tcp_interface
from wasi_tls_host.sockets.tcp import TcpSocket
from wasi_tls_host.wasi_tls import tls as tls_draft
from wasi_tls_host.wasi_tls import types as tls_types


@dataclass
class Loop:
    """An output stream whose bytes come back on an input stream."""

    output: object
    input: object
    end_output: Callable[[], None]


def echo_peer(listener: socket.socket, wrap=None) -> threading.Thread:
    def serve():
        conn, _ = listener.accept()
        if wrap is not None:
            conn = wrap(conn)
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except (ssl.SSLZeroReturnError, ConnectionResetError):
                    data = b""
                if not data:
                    break
                conn.sendall(data)
            if isinstance(conn, ssl.SSLSocket):
                try:
                    conn.unwrap()
                except (ssl.SSLError, OSError):
                    pass
            else:
                conn.shutdown(socket.SHUT_WR)
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def connected_tcp() -> tuple[TcpSocket, socket.socket]:
    listener = socket.create_server(("127.0.0.1", 0))
    sock = socket.create_connection(listener.getsockname())
    sock.setblocking(False)
    return TcpSocket(sock, "connected"), listener


def pipe_loop(ctx, pki, version):
    pipe = Pipe()
    return Loop(pipe.output, pipe.input, pipe.output.close)


def os_pipe_loop(ctx, pki, version):
    """stdout into an OS pipe (through a BufferedWriter, as sys.stdout.buffer
    is), read back as stdin from the other end."""
    read_fd, write_fd = os.pipe()
    writer = open(write_fd, "wb")  # noqa: SIM115 - closed by end_output or with the loop
    ctx.stdout = FileOutput(writer)
    ctx.stdin = FileInput(open(read_fd, "rb", buffering=0))  # noqa: SIM115 - as for writer

    def end_output() -> None:
        ctx.stdout.close()  # the host's own description of the pipe, then the file's
        writer.close()

    return Loop(ctx.stdout, ctx.stdin, end_output)


def tcp_loop(ctx, pki, version):
    tcp, listener = connected_tcp()
    echo_peer(listener)
    input_stream, output_stream = (child.obj for child in tcp.connected_streams())

    return Loop(output_stream, input_stream, lambda: tcp_interface.shutdown(ctx, tcp, "send"))


def tls_loop(ctx, pki, version):
    server_cert = pki.leaf("localhost")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.minimum_version = server.maximum_version = version
    server_cert.configure_cert(server)
    tcp, listener = connected_tcp()
    echo_peer(listener, lambda conn: server.wrap_socket(conn, server_side=True))
    input_stream, output_stream = (child.obj for child in tcp.connected_streams())
    handshake = tls_types.new_client_handshake(ctx, "localhost", input_stream, output_stream)
    future = tls_types.finish(ctx, handshake)
    ctx.wait_for(future)
    outcome = tls_types.get(ctx, future)
    connection = outcome.value.value[0]
    assert connection.session.protocol_version() == {
        ssl.TLSVersion.TLSv1_2: 0x0303, ssl.TLSVersion.TLSv1_3: 0x0304}[version]
    return Loop(connection.output, connection.input, connection.output.close_notify)


def tls_server_loop(ctx, pki, version):
    """The host as the TLS server (wasi-tls-host:tls), a Python ssl client echoing."""
    client = ssl.create_default_context()
    pki.ca.configure_trust(client)
    client.maximum_version = version
    tcp, listener = connected_tcp()
    echo_peer(listener, lambda conn: client.wrap_socket(conn, server_hostname="localhost"))
    input_stream, output_stream = (child.obj for child in tcp.connected_streams())
    identity = pki.identity("localhost")
    connection = tls_draft.new_server_connection(ctx, input_stream, output_stream)
    handshake = tls_draft.accept(ctx, connection).obj
    tls_draft.configure_server_identities(ctx, handshake, [tls_draft.IdentityHandle(identity)])
    future = tls_draft.server_finish(ctx, handshake).obj
    ctx.wait_for(future)
    tls_in, tls_out = (child.obj for child in tls_draft._future_get(ctx, future).value.value)
    return Loop(tls_out, tls_in, tls_out.close_notify)


KINDS = [
    pytest.param((pipe_loop, None), id="pipe"),
    pytest.param((os_pipe_loop, None), id="os-pipe"),
    pytest.param((tcp_loop, None), id="tcp"),
    pytest.param((tls_loop, ssl.TLSVersion.TLSv1_2), id="tls1.2"),
    pytest.param((tls_loop, ssl.TLSVersion.TLSv1_3), id="tls1.3"),
    pytest.param((tls_server_loop, ssl.TLSVersion.TLSv1_2), id="tls-server1.2"),
    pytest.param((tls_server_loop, ssl.TLSVersion.TLSv1_3), id="tls-server1.3"),
]


@pytest.fixture(params=KINDS)
def loop(request, pki):
    make, version = request.param
    ctx = WasiCtx(HostConfig(tls=pki.policy(handshake_timeout=10)))
    yield ctx, make(ctx, pki, version)
    ctx.close()


def write_all(ctx, output, data: bytes) -> None:
    """What a careful guest does: honour check-write, wait on subscribe."""
    view = memoryview(data)
    while view:
        permit = streams.check_write(ctx, output)
        if permit == 0:
            poll.block(ctx, streams.subscribe_output(ctx, output).obj)
            continue
        streams.write(ctx, output, bytes(view[:permit]))
        view = view[permit:]
    streams.blocking_flush(ctx, output)


def read_exactly(ctx, input_stream, size: int) -> bytes:
    received = bytearray()
    pollable = streams.subscribe_input(ctx, input_stream).obj
    while len(received) < size:
        chunk = streams.read(ctx, input_stream, size - len(received))
        if not chunk:
            assert poll.poll(ctx, [pollable]) == [0]
            continue
        received += chunk
    return bytes(received)


def stream_error(call) -> Case:
    with pytest.raises(ErrorValue) as caught:
        call()
    return caught.value.payload


def test_bytes_come_back_intact_in_both_small_and_large_writes(loop):
    ctx, pair = loop
    for size in (1, 4095, 4097, 1 << 20):
        payload = hashlib.shake_256(str(size).encode()).digest(size)
        # Write and read concurrently in one thread: the loop must never need
        # the whole payload buffered.
        sent = 0
        received = bytearray()
        while len(received) < size:
            permit = streams.check_write(ctx, pair.output)
            if permit and sent < size:
                chunk = payload[sent:sent + permit]
                streams.write(ctx, pair.output, chunk)
                sent += len(chunk)
                streams.flush(ctx, pair.output)
            received += streams.read(ctx, pair.input, 65536)
            if not received and permit == 0:
                poll.poll(ctx, [streams.subscribe_input(ctx, pair.input).obj,
                                streams.subscribe_output(ctx, pair.output).obj])
        assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()


def test_zero_length_read_returns_at_once(loop):
    ctx, pair = loop
    assert streams.read(ctx, pair.input, 0) == b""
    assert streams.blocking_read(ctx, pair.input, 0) == b""


def test_write_beyond_the_permit_traps(loop):
    ctx, pair = loop
    permit = streams.check_write(ctx, pair.output)
    assert permit > 0
    with pytest.raises(Trap, match="exceeds"):
        streams.write(ctx, pair.output, bytes(permit + 1))


def test_write_without_check_write_traps(loop):
    ctx, pair = loop
    with pytest.raises(Trap, match="exceeds the 0 bytes"):
        streams.write(ctx, pair.output, b"x")


def test_one_shot_blocking_write_is_limited_to_4096(loop):
    ctx, pair = loop
    with pytest.raises(Trap, match="at most 4096"):
        streams.blocking_write_and_flush(ctx, pair.output, bytes(4097))
    streams.blocking_write_and_flush(ctx, pair.output, b"z" * 4096)
    assert read_exactly(ctx, pair.input, 4096) == b"z" * 4096


def test_write_zeroes_and_skip(loop):
    ctx, pair = loop
    streams.blocking_write_zeroes_and_flush(ctx, pair.output, 100)
    write_all(ctx, pair.output, b"tail")
    skipped = 0
    while skipped < 100:
        skipped += streams.blocking_skip(ctx, pair.input, 100 - skipped)
    assert read_exactly(ctx, pair.input, 4) == b"tail"


def test_input_pollable_is_ready_only_with_data(loop):
    ctx, pair = loop
    pollable = streams.subscribe_input(ctx, pair.input).obj
    assert poll.ready(ctx, pollable) is False
    write_all(ctx, pair.output, b"ping")
    poll.block(ctx, pollable)
    assert poll.ready(ctx, pollable) is True
    assert read_exactly(ctx, pair.input, 4) == b"ping"


def test_end_of_output_reaches_the_reader_after_the_data(loop):
    ctx, pair = loop
    write_all(ctx, pair.output, b"last words")
    pair.end_output()
    assert read_exactly(ctx, pair.input, 10) == b"last words"
    assert stream_error(lambda: streams.blocking_read(ctx, pair.input, 10)) == Case("closed")
    assert stream_error(lambda: streams.read(ctx, pair.input, 10)) == Case("closed")
    # Zero bytes: still `closed` once the end was seen (a regression the
    # conformance suite found: a read of 0 answered before looking).
    assert stream_error(lambda: streams.read(ctx, pair.input, 0)) == Case("closed")
    assert stream_error(lambda: streams.blocking_read(ctx, pair.input, 0)) == Case("closed")
    assert stream_error(lambda: streams.skip(ctx, pair.input, 0)) == Case("closed")


def test_splice_moves_bytes_into_another_stream(loop):
    ctx, pair = loop
    sink = Pipe(capacity=1 << 20)
    write_all(ctx, pair.output, b"spliced!" * 1000)
    moved = 0
    while moved < 8000:
        moved += streams.blocking_splice(ctx, sink.output, pair.input, 8000 - moved)
    assert bytes(sink.buffer) == b"spliced!" * 1000


def test_poll_reports_each_listed_index(loop):
    ctx, pair = loop
    writable = streams.subscribe_output(ctx, pair.output).obj
    assert poll.poll(ctx, [writable, writable]) == [0, 1]
    with pytest.raises(Trap, match="empty"):
        poll.poll(ctx, [])


def test_write_zeroes_beyond_the_permit_traps_before_allocating(loop):
    ctx, pair = loop
    streams.check_write(ctx, pair.output)
    with pytest.raises(Trap, match="exceeds"):
        streams.write_zeroes(ctx, pair.output, 1 << 63)


def test_an_embedders_files_closed_under_the_guest_are_closed_streams():
    """Using a closed file raises ValueError, which was a host error (a trap)."""
    source, sink = io.BytesIO(b"unread"), io.BytesIO()
    ctx = WasiCtx(HostConfig(stdin=source, stdout=sink))
    source.close()
    sink.close()
    assert stream_error(lambda: streams.read(ctx, ctx.stdin, 10)) == Case("closed")
    assert stream_error(lambda: streams.flush(ctx, ctx.stdout)) == Case("closed")
    with pytest.raises(StreamClosed):
        ctx.stdout.write(b"late")
    ctx.close()
