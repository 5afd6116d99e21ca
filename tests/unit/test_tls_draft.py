"""wasi-tls-host:tls/tls driven the way a guest drives it (its interface
functions, a real context, TCP on loopback), against a peer that watches the
raw bytes: suspension is silence on the wire, misuse is an error value,
abort is an alert and nothing else. Every test runs under TLS 1.2 and 1.3
unless the behaviour exists in one only.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading

import pytest
from lockstep import ACCESS_DENIED_ALERT, INTERNAL_ERROR_ALERT
from pki import der_chain

from peers import TlsliteServer
from wasi_tls_host.config import HostConfig
from wasi_tls_host.runtime.context import WasiCtx
from wasi_tls_host.runtime.errors import ErrorValue
from wasi_tls_host.runtime.futures import Future
from wasi_tls_host.runtime.values import Child, Err, Ok
from wasi_tls_host.sockets.tcp import TcpSocket
from wasi_tls_host.tls.errors import ErrorKind
from wasi_tls_host.wasi_tls import tls

#: How long a suspended handshake must stay silent on the wire.
QUIET_S = 0.3


#: What a test opened (the host's connections, the peers' sockets); a guest's
#: resource table would drop the former, the test does it after each test.
_opened: list = []


def opened(thing):
    _opened.append(thing)
    return thing


@pytest.fixture
def ctx(pki):
    context = WasiCtx(HostConfig(tls=pki.policy(handshake_timeout=10)))
    yield context
    while _opened:
        _opened.pop().close()
    context.close()


class WirePeer:
    """The far end of a loopback TCP connection, speaking TLS through its own
    SSLObject so that the test sees (and times) every byte."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, *, server_side: bool):
        self.sock = sock
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side=server_side,
                                    server_hostname=None if server_side else "localhost")
        self.received = 0

    def step(self) -> None:
        """Run the handshake as far as it goes, sending what it produces."""
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        self.flush()

    def flush(self) -> None:
        if data := self.outgoing.read():
            self.sock.sendall(data)

    def quiet_for(self, seconds: float) -> bool:
        """True when nothing arrives from the host for `seconds`."""
        return not select.select([self.sock], [], [], seconds)[0]

    def receive(self, timeout: float = 10) -> bytes:
        if not select.select([self.sock], [], [], timeout)[0]:
            return b""
        data = self.sock.recv(65536)
        self.received += len(data)
        self.incoming.write(data)
        return data


def loopback(ctx) -> tuple:
    """(host input stream, host output stream, peer socket) over TCP."""
    listener = socket.create_server(("127.0.0.1", 0))
    host_side = socket.create_connection(listener.getsockname())
    peer, _ = listener.accept()
    opened(peer)
    listener.close()
    host_side.setblocking(False)
    tcp = TcpSocket(host_side, "connected")
    transport_in, transport_out = (child.obj for child in tcp.connected_streams())
    tcp.close()  # the streams keep the socket open, as when a guest drops it
    return transport_in, transport_out, peer


def settle(ctx, future: Future):
    """What `get` returns once the future is ready (the guest polling it)."""
    ctx.wait_for(future)
    return tls._future_get(ctx, future)


def value(outcome):
    assert isinstance(outcome, Ok) and isinstance(outcome.value, Ok), outcome
    result = outcome.value.value
    return result.obj if isinstance(result, Child) else result


class PeerThread(threading.Thread):
    """The peer answering whatever arrives, until its own handshake is done."""

    def __init__(self, peer: WirePeer):
        super().__init__(daemon=True)
        self.peer = peer
        self.start()

    def run(self):
        while self.peer.tls.version() is None and self.peer.receive():
            self.peer.step()

    def finished(self) -> WirePeer:
        self.join(10)
        assert not self.is_alive()
        return self.peer


def client(ctx, pki, version, *, client_auth=ssl.CERT_NONE, alpn=(), leaf=None):
    leaf = leaf or pki.leaf("localhost")
    context = pki.server_context(leaf, version, client_auth=client_auth)
    if alpn:
        context.set_alpn_protocols(list(alpn))
    transport_in, transport_out, sock = loopback(ctx)
    connection = opened(tls.new_client_connection(ctx, transport_in, transport_out))
    handshake = value(Ok(tls.connect(ctx, connection, "localhost")))
    peer = WirePeer(sock, context, server_side=True)
    peer.leaf = leaf
    return connection, handshake, peer


def server(ctx, context: ssl.SSLContext):
    """(server connection, its handshake, the client peer with `context`)."""
    transport_in, transport_out, sock = loopback(ctx)
    connection = opened(tls.new_server_connection(ctx, transport_in, transport_out))
    return connection, tls.accept(ctx, connection).obj, WirePeer(sock, context, server_side=False)


# -- suspension is silence ----------------------------------------------------------

def test_client_sends_nothing_until_a_step_resumes_it(ctx, pki, version):
    connection, handshake, peer = client(ctx, pki, version)
    tls.client_configure_alpn_ids(ctx, handshake, [b"h2"])
    assert peer.quiet_for(QUIET_S)  # not even a ClientHello
    tls.verify_server_identity(ctx, handshake)
    assert peer.receive()[:1] == b"\x16"  # now the ClientHello


def test_client_holds_still_after_the_server_certificate(ctx, pki, version):
    connection, handshake, peer = client(ctx, pki, version)
    future = tls.verify_server_identity(ctx, handshake).obj
    peer.receive()
    peer.step()  # the server's whole flight goes out
    public = value(settle(ctx, future))
    assert public.chain[0] == der_chain(peer.leaf)[0]
    assert peer.quiet_for(QUIET_S)  # the client's Finished waits for the guest
    answering = PeerThread(peer)
    streams = value(settle(ctx, tls.client_finish(ctx, handshake).obj))
    assert len(streams) == 2 and answering.finished().tls.version()


def test_client_holds_still_at_a_certificate_request(ctx, pki, version):
    connection, handshake, peer = client(ctx, pki, version, client_auth=ssl.CERT_REQUIRED)
    future = tls.receive_client_identity_request(ctx, handshake).obj
    peer.receive()
    peer.step()
    request = value(settle(ctx, future))
    assert isinstance(request, tls.ClientIdentityRequest)
    assert peer.quiet_for(QUIET_S)
    identity = tls.IdentityHandle(pki.identity("client.example"))
    tls.respond(ctx, request, [identity])
    answering = PeerThread(peer)
    value(settle(ctx, tls.client_finish(ctx, handshake).obj))
    peer = answering.finished()
    assert peer.tls.getpeercert(binary_form=True) == identity.identity.public.chain[0]
    assert tls.client_identity_sent(ctx, connection).identity is identity.identity


def test_an_answer_whose_context_cannot_be_built_fails_the_handshake(ctx, pki, version):
    """The client context for the chosen identity is built when the guest
    answers; if the operator's CA file has gone since start-up, the handshake
    fails with that reason instead of trapping."""
    connection, handshake, peer = client(ctx, pki, version, client_auth=ssl.CERT_REQUIRED)
    future = tls.receive_client_identity_request(ctx, handshake).obj
    peer.receive()
    peer.step()
    request = value(settle(ctx, future))
    ctx.config.tls.ca_files = [str(pki.ca_file) + ".gone"]
    tls.respond(ctx, request, [tls.IdentityHandle(pki.identity("client.example"))])
    outcome = settle(ctx, tls.client_finish(ctx, handshake).obj)
    assert isinstance(outcome, Ok) and isinstance(outcome.value, Err)
    failure = handshake.session.failure.error
    assert failure.kind == ErrorKind.CONFIGURATION
    assert str(failure) == f"CA file not found: {pki.ca_file}.gone"


def test_server_holds_still_after_the_client_hello(ctx, pki, version):
    connection, handshake, peer = server(ctx, pki.client_context(version))
    future = tls.receive_client_hello(ctx, handshake).obj
    peer.step()  # the ClientHello
    hello = value(settle(ctx, future))
    assert tls.hello_server_name(ctx, hello) == "localhost"
    assert peer.quiet_for(QUIET_S)  # no ServerHello until the guest goes on
    tls.configure_server_identities(ctx, handshake,
                                    [tls.IdentityHandle(pki.identity("localhost"))])
    finished = tls.server_finish(ctx, handshake).obj
    answering = PeerThread(peer)
    value(settle(ctx, finished))
    assert answering.finished().tls.version() == f"TLSv{version}"


# -- abort -------------------------------------------------------------------------

def test_abort_after_the_server_certificate_sends_only_an_alert(ctx, pki, version):
    connection, handshake, peer = client(ctx, pki, version)
    future = tls.verify_server_identity(ctx, handshake).obj
    peer.receive()
    peer.step()
    value(settle(ctx, future))
    before = peer.received
    sent = tls.client_abort(ctx, handshake).obj
    ctx.wait_for(sent.waitable)
    assert peer.receive() == ACCESS_DENIED_ALERT
    assert peer.received - before == len(ACCESS_DENIED_ALERT)
    with pytest.raises(ssl.SSLError):
        peer.tls.do_handshake()  # the peer's handshake ends: no application data


# -- why it failed -------------------------------------------------------------------

def failure_reason(ctx, connection) -> str | None:
    """`failure-reason` of a client or server connection, as a guest calls it."""
    role = "client" if isinstance(connection, tls.ClientConnection) else "server"
    return tls.interface.functions[f"[method]{role}-connection.failure-reason"](ctx, connection)


def test_a_failed_client_handshake_says_why(ctx, pki, version):
    """The draft's failed future says only that the step failed; the
    connection's failure-reason says what OpenSSL found."""
    connection, handshake, peer = client(ctx, pki, version,
                                         leaf=pki.leaf("localhost", trusted=False))
    assert failure_reason(ctx, connection) is None
    finished = tls.client_finish(ctx, handshake).obj
    peer.receive()
    peer.step()  # the server's flight, with the certificate the client refuses
    assert settle(ctx, finished) == Ok(Err())
    assert failure_reason(ctx, connection) == (
        "certificate verify failed: unable to get local issuer certificate "
        "(server name: localhost)")


def test_a_server_handshake_that_got_no_client_hello_says_why(ctx, pki, version):
    connection, handshake, peer = server(ctx, pki.client_context(version))
    assert failure_reason(ctx, connection) is None  # not even started
    future = tls.receive_client_hello(ctx, handshake).obj
    peer.sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert settle(ctx, future) == Ok(Err())
    assert failure_reason(ctx, connection) == (
        "peer sent data that is not TLS: http request [HTTP_REQUEST]")


def test_an_aborted_handshake_says_so(ctx, pki, version):
    connection, handshake, peer = client(ctx, pki, version)
    future = tls.verify_server_identity(ctx, handshake).obj
    peer.receive()
    peer.step()
    value(settle(ctx, future))
    tls.client_abort(ctx, handshake)
    assert failure_reason(ctx, connection) == "the handshake was aborted"


def test_a_connection_that_did_not_fail_has_no_failure_reason(ctx, pki, version):
    connection, handshake, peer = client(ctx, pki, version)
    answering = PeerThread(peer)
    value(settle(ctx, tls.client_finish(ctx, handshake).obj))
    answering.finished()
    assert failure_reason(ctx, connection) is None


# -- misuse is an error value --------------------------------------------------------

def test_each_step_once_and_only_before_its_point(ctx, pki, version):
    connection, handshake, peer = client(ctx, pki, version)
    assert tls.connect(ctx, connection, "localhost") == Err()  # connect twice
    value(Ok(Ok(tls.verify_server_identity(ctx, handshake))))
    with pytest.raises(ErrorValue):
        tls.verify_server_identity(ctx, handshake)  # twice
    with pytest.raises(ErrorValue):
        tls.client_configure_alpn_ids(ctx, handshake, [b"h2"])  # after resuming
    answering = PeerThread(peer)
    future = tls.client_finish(ctx, handshake).obj
    value(settle(ctx, future))
    assert tls._future_get(ctx, future) == Err()  # get twice
    assert answering.finished().tls.version()


@pytest.mark.parametrize("ids", [[b""], [b"x" * 256], ["h\u00e9".encode()]])
def test_alpn_ids_the_host_cannot_offer_are_refused(ctx, pki, ids):
    connection, handshake, peer = client(ctx, pki, "1.3")
    with pytest.raises(ErrorValue):
        tls.client_configure_alpn_ids(ctx, handshake, ids)


def test_server_misuse(ctx, pki):
    transport_in, transport_out, _ = loopback(ctx)
    connection = opened(tls.new_server_connection(ctx, transport_in, transport_out))
    handshake = tls.accept(ctx, connection).obj
    with pytest.raises(ErrorValue):
        tls.accept(ctx, connection)  # twice
    with pytest.raises(ErrorValue):
        tls.configure_server_identities(ctx, handshake, [])  # no identity
    with pytest.raises(ErrorValue):
        tls.request_client_identity_after(ctx, connection)  # before the handshake
    tls.receive_client_hello(ctx, handshake)
    with pytest.raises(ErrorValue):
        tls.receive_client_hello(ctx, handshake)  # twice


def test_a_server_without_identities_fails_its_handshake(ctx, pki, version):
    """Nothing the client did is wrong: internal_error."""
    connection, handshake, peer = server(ctx, pki.client_context(version))
    finished = tls.server_finish(ctx, handshake).obj
    peer.step()
    assert settle(ctx, finished) == Ok(Err())
    assert peer.receive() == INTERNAL_ERROR_ALERT


def test_bad_identities_are_refused(ctx, pki):
    leaf, other = pki.leaf("a.example"), pki.leaf("b.example")
    with pytest.raises(ErrorValue):
        tls.parse_identity(ctx, b"not a key", [leaf.cert_chain_pems[0].bytes()])
    with pytest.raises(ErrorValue):
        tls.parse_identity(ctx, other.private_key_pem.bytes(), [leaf.cert_chain_pems[0].bytes()])
    handle = tls.parse_identity(ctx, leaf.private_key_pem.bytes(),
                                [leaf.cert_chain_pems[0].bytes()])
    chain = tls.export_x509_chain(ctx, tls.public_identity(ctx, handle))
    assert chain == list(der_chain(leaf))


# -- post-handshake authentication -------------------------------------------------------

def test_post_handshake_request_is_refused_on_tls_1_2(ctx, pki):
    context = pki.client_context("1.2", pki.leaf("client.example"))
    context.post_handshake_auth = True
    connection, handshake, peer = server(ctx, context)
    tls.configure_server_identities(ctx, handshake,
                                    [tls.IdentityHandle(pki.identity("localhost"))])
    finished = tls.server_finish(ctx, handshake).obj
    peer.step()
    answering = PeerThread(peer)
    value(settle(ctx, finished))
    answering.finished()
    with pytest.raises(ErrorValue):
        tls.request_client_identity_after(ctx, connection)



# -- a peer with no point to stop at -----------------------------------------------------

def connect_to(port: int) -> tuple:
    """Host transport streams connected to 127.0.0.1:`port`."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    tcp = TcpSocket(sock, "connected")
    streams = tuple(child.obj for child in tcp.connected_streams())
    tcp.close()
    return streams


def test_a_request_packed_with_the_servers_finished_cannot_be_answered(ctx, pki):
    """TLS 1.3 from a server that sends its CertificateRequest in the same
    record as its Finished: OpenSSL answers the request (with no certificate)
    as it reads that record, so there is no point at which to stop. The
    request is still reported; answering it with an identity fails the
    handshake with that explanation rather than silently sending none."""
    server = TlsliteServer(pki.leaf("localhost"), "1.3", request_certificate=True)
    connection = opened(tls.new_client_connection(ctx, *connect_to(server.port)))
    handshake = value(Ok(tls.connect(ctx, connection, "localhost")))
    request = value(settle(ctx, tls.receive_client_identity_request(ctx, handshake).obj))
    tls.respond(ctx, request, [tls.IdentityHandle(pki.identity("client.example"))])
    assert settle(ctx, tls.client_finish(ctx, handshake).obj) == Ok(Err())
    assert "too late to send a client certificate" in connection.session.error_message()
    connection.close()
    server.close()
    assert server.client_chain is None
