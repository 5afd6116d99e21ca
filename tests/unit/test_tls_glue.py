"""wasi:tls glue edge cases, driven like a guest against Python ssl peers."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable

import pytest
from lockstep import LIBSSL, SSL_KEY_UPDATE_REQUESTED, PlainSSLPeer, ssl_pointer
from pki import Pki

from wasi_tls_host.config import HostConfig
from wasi_tls_host.io import streams
from wasi_tls_host.runtime.context import ACCEPTED_SERVER_NAMES_MAX, TlsState, WasiCtx
from wasi_tls_host.runtime.errors import ErrorValue
from wasi_tls_host.runtime.poll import Deadline
from wasi_tls_host.runtime.streams import OutputStream, Pipe, StreamFailed
from wasi_tls_host.runtime.values import Err, Ok
from wasi_tls_host.sockets.tcp import TcpSocket
from wasi_tls_host.tls import core
from wasi_tls_host.tls.policy import ContextChoice
from wasi_tls_host.tls.records import ContentType
from wasi_tls_host.wasi_tls import types as tls_types
from wasi_tls_host.wasi_tls.session import TlsInput, TlsOutput, open_session


@pytest.fixture
def ctx(pki):
    context = WasiCtx(HostConfig(tls=pki.policy(handshake_timeout=10)))
    yield context
    context.close()


def serve_once(pki: Pki, behave) -> tuple[int, threading.Thread]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    pki.leaf("localhost").configure_cert(context)
    listener = socket.create_server(("127.0.0.1", 0))

    def run():
        raw, _ = listener.accept()
        listener.close()
        conn = context.wrap_socket(raw, server_side=True)
        try:
            behave(conn)
        finally:
            conn.close()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


def connect(ctx, port: int):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    tcp = TcpSocket(sock, "connected")
    transport_in, transport_out = (child.obj for child in tcp.connected_streams())
    handshake = tls_types.new_client_handshake(ctx, "localhost", transport_in, transport_out)
    future = tls_types.finish(ctx, handshake)
    ctx.wait_for(future)
    outcome = tls_types.get(ctx, future)
    assert isinstance(outcome, Ok) and isinstance(outcome.value, Ok), outcome
    tcp.close()  # the TLS connection owns the streams now, as with a real guest
    return outcome.value.value[0]


@pytest.mark.parametrize("name", ["", ".x", "a\0b", "x" * 64 + ".example"])
def test_invalid_server_name_settles_the_future_with_an_error(ctx, name):
    upstream, downstream = Pipe(), Pipe()
    handshake = tls_types.new_client_handshake(ctx, name, upstream.input, downstream.output)
    future = tls_types.finish(ctx, handshake)
    outcome = tls_types.get(ctx, future)
    assert isinstance(outcome, Ok) and isinstance(outcome.value, Err)
    assert "invalid server name" in outcome.value.value.message
    assert tls_types.get(ctx, future) == Err()
    assert downstream.writer_closed  # the transport was released


def test_a_server_name_is_checked_once_per_guest(pki, monkeypatch):
    checked: list[str | None] = []
    real_check = core.check_server_name
    monkeypatch.setattr(core, "check_server_name",
                        lambda name: (checked.append(name), real_check(name)))
    contexts = [WasiCtx(HostConfig(tls=pki.policy())) for _ in range(2)]

    def start(ctx, name):
        upstream, downstream = Pipe(), Pipe()
        return tls_types.finish(ctx, tls_types.new_client_handshake(
            ctx, name, upstream.input, downstream.output))
    try:
        futures = [start(contexts[0], "localhost"), start(contexts[0], "localhost"),
                   start(contexts[1], "localhost"),  # another guest: asked again
                   start(contexts[0], ".x"), start(contexts[0], ".x")]  # a refusal is not kept
        assert checked == ["localhost", "localhost", ".x", ".x"]
        outcome = tls_types.get(contexts[0], futures[-1])
        assert "invalid server name" in outcome.value.value.message
        assert contexts[0].tls.accepted_server_names == {"localhost"}
    finally:
        for ctx in contexts:
            ctx.close()


def test_the_accepted_names_of_a_guest_are_bounded():
    state = TlsState()
    for index in range(ACCEPTED_SERVER_NAMES_MAX):
        state.accepted(f"host{index}.example")
    assert len(state.accepted_server_names) == ACCEPTED_SERVER_NAMES_MAX
    state.accepted("one-more.example")  # full: it starts over
    assert state.accepted_server_names == {"one-more.example"}


def test_flush_completes_only_once_the_transport_sent_everything(ctx, pki):
    size = 4 << 20
    got = bytearray()

    def slow_reader(conn):
        time.sleep(0.3)  # let the client's buffers fill first
        while len(got) < size:
            got.extend(conn.recv(1 << 16))
        conn.sendall(b"OK")
    port, _ = serve_once(pki, slow_reader)
    connection = connect(ctx, port)
    sent = 0
    while sent < size:
        permit = streams.check_write(ctx, connection.output)
        if not permit:
            ctx.wait_for(connection.output)
            continue
        chunk = min(permit, size - sent)
        streams.write(ctx, connection.output, bytes(chunk))
        sent += chunk
    streams.blocking_flush(ctx, connection.output)
    assert connection.session.transport_out.pending == bytearray()
    assert streams.blocking_read(ctx, connection.input, 10) == b"OK"
    assert len(got) == size


def test_early_response_is_readable_after_the_upload_fails(ctx, pki):
    def refuse(conn):
        conn.recv(100)
        conn.sendall(b"HTTP/1.1 413 Payload Too Large\r\n\r\n")
        try:
            conn.unwrap()
        except (ssl.SSLError, OSError):
            pass
        time.sleep(0.3)  # closing with unread upload bytes resets the connection
    port, _ = serve_once(pki, refuse)
    connection = connect(ctx, port)
    with pytest.raises(ErrorValue):
        for _ in range(4000):
            streams.blocking_write_and_flush(ctx, connection.output, bytes(4096))
    assert streams.blocking_read(ctx, connection.input, 100).startswith(b"HTTP/1.1 413")


def test_dropping_the_connection_sends_close_notify_without_blocking(ctx, pki):
    outcome = {}

    def wait_for_close_notify(conn):
        outcome["data"] = conn.recv(100)
        outcome["after"] = conn.recv(100)  # b"" once close_notify arrives
    port, server = serve_once(pki, wait_for_close_notify)
    connection = connect(ctx, port)
    streams.blocking_write_and_flush(ctx, connection.output, b"bye")
    tls_types.close_output(ctx, connection)
    started = time.monotonic()
    connection.input.close()
    connection.output.close()
    connection.close()
    assert time.monotonic() - started < 1
    server.join(10)
    assert outcome == {"data": b"bye", "after": b""}


def test_get_alone_drives_the_handshake(ctx, pki):
    """A guest that only calls `get` (no poll) must still see the handshake finish."""
    def echo_once(conn):
        conn.sendall(conn.recv(100))
    port, _ = serve_once(pki, echo_once)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    tcp = TcpSocket(sock, "connected")
    transport_in, transport_out = (child.obj for child in tcp.connected_streams())
    future = tls_types.finish(
        ctx, tls_types.new_client_handshake(ctx, "localhost", transport_in, transport_out))
    deadline = time.monotonic() + 10
    outcome = None
    while outcome is None and time.monotonic() < deadline:
        outcome = tls_types.get(ctx, future)
        time.sleep(0.001)
    assert isinstance(outcome, Ok) and isinstance(outcome.value, Ok), outcome
    tcp.close()


def test_a_closed_session_sends_what_the_transport_could_not_take_yet(ctx):
    """Closing never writes past the transport's budget: the rest lingers, goes
    out as the transport drains (on the guest's next waits), and only then is
    the transport released."""
    upstream, downstream = Pipe(), Pipe(capacity=100)
    session = open_session(ctx, upstream.input, downstream.output,
                           lambda hello: ContextChoice(ctx.config.tls.client_context()),
                           server_name="localhost")
    hello = bytearray(downstream.input.read(1000))
    assert len(hello) == 100 and session.outgoing  # the ClientHello did not fit
    session.close()
    assert ctx.lingering and not downstream.writer_closed
    for _ in range(20):
        ctx.wait_for(Deadline(ctx.now_ns, ctx.now_ns()))  # any later wait moves it on
        hello += downstream.input.read(1000)
        if not ctx.lingering:
            break
    assert hello[0] == 0x16 and len(hello) == 5 + int.from_bytes(hello[3:5], "big")
    assert downstream.writer_closed and upstream.reader_closed and not ctx.lingering


# -- a transport that stops taking bytes during the handshake --------------------------

CONNECTION_RESET = "connection-reset: Connection reset by peer"


class BreakableOutput(OutputStream):
    """A pipe's writing end that, once `broken`, fails every call the way a
    reset TCP connection's output stream does."""

    def __init__(self, pipe: Pipe):
        self.pipe = pipe
        self.broken = False

    def _raise_if_broken(self) -> None:
        if self.broken:
            raise StreamFailed(CONNECTION_RESET, network_code="connection-reset")

    def check_write(self) -> int:
        self._raise_if_broken()
        return self.pipe.output.check_write()

    def write(self, data: bytes) -> None:
        self._raise_if_broken()
        self.pipe.output.write(data)

    def close(self) -> None:
        self.pipe.output.close()


def break_transport(downstream: Pipe, transport_out: BreakableOutput, how: str) -> None:
    if how == "closed":
        downstream.input.close()  # nobody reads the transport any more
    else:
        transport_out.broken = True


#: How the transport's output breaks, and what the guest is told of it.
BREAKS = [
    pytest.param("closed", "transport failed: the transport closed for writing", id="closed"),
    pytest.param("failed", f"transport failed: {CONNECTION_RESET}", id="failed"),
]


@pytest.mark.parametrize("how, message", BREAKS)
def test_a_transport_that_cannot_take_the_client_hello_fails_the_handshake_with_why(
        ctx, how, message):
    upstream, downstream = Pipe(), Pipe()
    transport_out = BreakableOutput(downstream)
    break_transport(downstream, transport_out, how)
    handshake = tls_types.new_client_handshake(ctx, "localhost", upstream.input, transport_out)
    future = tls_types.finish(ctx, handshake)
    outcome = tls_types.get(ctx, future)
    assert isinstance(outcome, Ok) and isinstance(outcome.value, Err), outcome
    assert outcome.value.value.message == message
    assert downstream.buffer == bytearray()  # not a byte of the ClientHello went out


@pytest.mark.parametrize("how, message", BREAKS)
def test_a_transport_that_breaks_during_a_servers_handshake_is_the_sessions_failure(
        ctx, pki, version, how, message):
    upstream, downstream = Pipe(), Pipe()
    transport_out = BreakableOutput(downstream)
    context = pki.server_context(pki.leaf("localhost"), version)
    session = open_session(ctx, upstream.input, transport_out,
                           lambda hello: ContextChoice(context))
    client = PlainSSLPeer(pki.client_context(version), server_side=False,
                          server_hostname="localhost")
    assert client.handshake() is False
    upstream.output.write(client.ciphertext_to_send())  # the ClientHello
    break_transport(downstream, transport_out, how)
    session.pump()  # the hello is read and answered; the answer cannot leave
    assert session.outgoing[:1] == b"\x16"  # the server's first flight, held
    assert not session.handshake_done
    assert session.failure.ends_reading  # nothing was read before the handshake failed
    assert session.error_message() == message
    assert downstream.buffer == bytearray()


# -- what OpenSSL says while the host reads ------------------------------------------------

def handshake_over_pipes(session, peer: PlainSSLPeer, upstream: Pipe, downstream: Pipe) -> None:
    """Run both handshakes over the session's transport pipes, then drop
    whatever bytes the handshake left on the way to the peer."""
    for _ in range(10):
        peer.receive_ciphertext(downstream.input.read(1 << 20))
        peer_done = peer.handshake()
        upstream.output.write(peer.ciphertext_to_send())
        session.pump()
        if peer_done and session.handshake_done:
            break
    assert peer_done and session.handshake_done
    peer.receive_ciphertext(downstream.input.read(1 << 20))


def request_key_update(server: PlainSSLPeer) -> None:
    assert LIBSSL.SSL_key_update(ssl_pointer(server, 0x0304), SSL_KEY_UPDATE_REQUESTED) == 1


def request_certificate(server: PlainSSLPeer) -> None:
    server.obj.verify_client_post_handshake()


@pytest.mark.parametrize("ask", [
    pytest.param(request_certificate, id="certificate-request"),
    pytest.param(request_key_update, id="key-update"),
])
def test_what_openssl_answers_while_the_guest_reads_goes_out_at_once(ctx, pki, ask):
    """TLS 1.3 only (1.2 has neither message; its case is below). OpenSSL
    answers a KeyUpdate with update_requested, or a post-handshake
    CertificateRequest, while the host reads; a guest that only reads must
    not keep the answer back (the peer may wait for it), so it reaches the
    transport with the read."""
    identity = pki.identity("client.example")
    upstream, downstream = Pipe(), Pipe()
    session = open_session(
        ctx, upstream.input, downstream.output,
        lambda hello: ctx.config.tls.choose_client_context(identity=identity),
        server_name="localhost")
    context = pki.server_context(pki.leaf("localhost"), "1.3", client_auth=ssl.CERT_OPTIONAL)
    context.post_handshake_auth = True  # so no certificate is asked for in the handshake
    server = PlainSSLPeer(context, server_side=True)
    handshake_over_pipes(session, server, upstream, downstream)

    ask(server)
    server.write(b"hello")  # the request goes out ahead of the data
    upstream.output.write(server.ciphertext_to_send())
    guest_in, guest_out = TlsInput(session), TlsOutput(session)
    assert guest_in.read(100) == b"hello"
    answer = downstream.input.read(1 << 20)
    assert answer  # without a write from the guest

    server.receive_ciphertext(answer)
    assert server.read(100) is None  # taken without error
    if ask is request_certificate:
        assert server.obj.getpeercert(binary_form=True) == identity.public.chain[0]
    guest_out.write(b"after")  # the server reads it with the keys the answer announced
    server.receive_ciphertext(downstream.input.read(1 << 20))
    assert server.read(100) == b"after"


def test_a_refused_renegotiation_is_answered_as_the_guest_reads(ctx, pki):
    """TLS 1.2 only (1.3 has no renegotiation). OpenSSL refuses a client's
    renegotiation with a no_renegotiation warning alert, written while the
    host reads; it reaches the transport with the read."""
    upstream, downstream = Pipe(), Pipe()
    policy = ctx.config.tls
    session = open_session(ctx, upstream.input, downstream.output, lambda hello: ContextChoice(
        policy.server_context([pki.identity("localhost")])))
    client = PlainSSLPeer(pki.client_context("1.2"), server_side=False,
                          server_hostname="localhost")
    handshake_over_pipes(session, client, upstream, downstream)

    assert LIBSSL.SSL_renegotiate(ssl_pointer(client, 0x0303)) == 1
    assert client.handshake() is False  # its new ClientHello, protected
    upstream.output.write(client.ciphertext_to_send())
    assert TlsInput(session).read(100) == b""  # nothing for the guest
    answer = downstream.input.read(1 << 20)
    assert answer[:1] == bytes([ContentType.ALERT])  # without a write from the guest


# -- a TLS connection over another's plaintext streams -------------------------------------

class AnsweringOutput(OutputStream):
    """A pipe's writing end whose peer, once `answer` is set, answers each
    write before the write returns: a peer on loopback that runs while the
    host is still sending, as it does on a busy machine."""

    def __init__(self, pipe: Pipe):
        self.pipe = pipe
        self.answer: Callable[[], None] | None = None

    def check_write(self) -> int:
        return self.pipe.output.check_write()

    def write(self, data: bytes) -> None:
        self.pipe.output.write(data)
        if self.answer is not None:
            self.answer()


class NestedEchoPeer:
    """The conformance peer TlsNestedEcho over pipes, in step with the test:
    a TLS server whose plaintext carries a second TLS server that echoes."""

    def __init__(self, pki: Pki, version: str, upstream: Pipe, downstream: Pipe):
        self.outer = PlainSSLPeer(pki.server_context(pki.leaf("localhost"), version),
                                  server_side=True)
        self.inner = PlainSSLPeer(pki.server_context(pki.leaf("inner.test"), version),
                                  server_side=True)
        self.upstream, self.downstream = upstream, downstream

    def answer(self) -> None:
        """Take what the host sent and answer all of it."""
        self.outer.receive_ciphertext(self.downstream.input.read(1 << 20))
        if self.outer.handshake():
            while plaintext := self.outer.read(1 << 16):
                self.inner.receive_ciphertext(plaintext)
            if self.inner.handshake():
                while echo := self.inner.read(1 << 16):
                    self.inner.write(echo)
            self.outer.write(self.inner.ciphertext_to_send())
        self.upstream.output.write(self.outer.ciphertext_to_send())


def test_a_connection_over_another_sees_what_its_transport_took_in_while_sending(pki, version):
    """tls/tls-in-tls@tls1.2 timed out on a busy machine. The outer session
    pulls the peer's bytes in whenever the inner one sends through it; when
    the peer has answered by then (its answer to the inner client's last
    TLS 1.2 flight, an echo), the bytes sit undecrypted in the outer core.
    The inner pollable must be ready for them, not sleep until its deadline
    (the handshake) or forever (the echo)."""
    ctx = WasiCtx(HostConfig(tls=pki.policy(handshake_timeout=2)))
    upstream, downstream = Pipe(), Pipe()
    transport_out = AnsweringOutput(downstream)
    peer = NestedEchoPeer(pki, version, upstream, downstream)
    outer = open_session(ctx, upstream.input, transport_out,
                         lambda hello: ContextChoice(ctx.config.tls.client_context()),
                         server_name="localhost")
    while not outer.handshake_done:
        peer.answer()
        outer.pump()
    peer.answer()  # the client's last flight (TLS 1.3), answered with tickets
    handshake = tls_types.new_client_handshake(ctx, "inner.test", TlsInput(outer),
                                               TlsOutput(outer))
    future = tls_types.finish(ctx, handshake)  # the inner ClientHello goes out
    peer.answer()  # its answer comes after the host's turn...
    transport_out.answer = peer.answer  # ...and every later one at once

    ctx.wait_for(future)
    outcome = tls_types.get(ctx, future)
    assert isinstance(outcome, Ok) and isinstance(outcome.value, Ok), outcome
    _, inner_input, inner_output = outcome.value.value
    assert streams.check_write(ctx, inner_output.obj) > 0
    streams.write(ctx, inner_output.obj, b"ping")
    ctx.wait_for(inner_input.obj)
    assert streams.read(ctx, inner_input.obj, 100) == b"ping"
    ctx.close()
