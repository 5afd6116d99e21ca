"""The core's stop points, its server role, aborts and post-handshake
authentication, over in-memory lockstep pairs with real OpenSSL on both ends.
Every test runs under TLS 1.2 and TLS 1.3 unless the feature exists in one only.
At the end, the stop table (`tls.progress`) row by row, without OpenSSL.
"""

from __future__ import annotations

import ssl

import pytest
from lockstep import (
    ACCESS_DENIED_ALERT,
    INTERNAL_ERROR_ALERT,
    LIBSSL,
    PlainSSLPeer,
    flush,
    handshake_ok,
    lockstep,
    resumed_session,
    ssl_pointer,
)
from pki import TLS_VERSIONS, Pki, der_chain

from wasi_tls_host.tls import (
    ClientAuth,
    CoreState,
    ErrorKind,
    Point,
    TlsCore,
    TlsFailure,
    TlsPolicy,
)
from wasi_tls_host.tls.progress import (
    ANY_VERSION,
    EMPTY_CERTIFICATE,
    STOPS,
    Direction,
    Progress,
    Role,
)
from wasi_tls_host.tls.records import ContentType, HandshakeType


def client(pki: Pki, run_until: Point, **context) -> TlsCore:
    return TlsCore(pki.policy().client_context(**context), server_hostname="localhost",
                         run_until=run_until)


def server(pki: Pki, version: str, leaf=None, run_until: Point = Point.DONE,
           client_auth=ssl.CERT_NONE) -> TlsCore:
    context = pki.server_context(leaf or pki.leaf("localhost"), version, client_auth=client_auth)
    return TlsCore(context, server_side=True, run_until=run_until)


def test_a_suspended_client_sends_nothing_until_resumed(pki, version):
    conn = client(pki, Point.START)
    assert conn.state == CoreState.SUSPENDED and conn.suspended_at == Point.START
    assert conn.handshake() is False
    assert conn.ciphertext_to_send() == b"" and not conn.wants_ciphertext()
    assert not conn.started  # the context is chosen at the first resume
    conn.resume(Point.DONE)
    assert conn.handshake() is False
    assert conn.ciphertext_to_send()[:1] == bytes((ContentType.HANDSHAKE,))  # the ClientHello


def test_client_stops_once_the_server_chain_is_verified(pki, version):
    leaf = pki.leaf("localhost")
    conn, peer = client(pki, Point.SERVER_CERTIFICATE), server(pki, version, leaf)
    conn.resume(Point.SERVER_CERTIFICATE)
    assert lockstep(conn, peer) == {conn: None, peer: None}
    assert conn.suspended_at == Point.SERVER_CERTIFICATE
    assert conn.peer_chain() == der_chain(leaf)
    assert conn.ciphertext_to_send() == b""  # nothing more goes to the server
    assert not peer.handshake_complete and not conn.handshake_complete
    conn.resume(Point.DONE)
    handshake_ok(conn, peer)
    assert conn.version() == f"TLSv{version}"


def test_an_untrusted_server_fails_before_the_stop(pki, version):
    conn = client(pki, Point.SERVER_CERTIFICATE)
    peer = server(pki, version, pki.leaf("localhost", trusted=False))
    errors = lockstep(conn, peer)
    assert errors[conn].kind == "certificate"
    assert not conn.reached(Point.SERVER_CERTIFICATE)


def test_client_answers_a_certificate_request_with_a_late_identity(pki, version):
    identity = pki.identity("client.example")
    conn = client(pki, Point.CLIENT_IDENTITY_REQUEST)
    peer = server(pki, version, client_auth=ssl.CERT_REQUIRED)
    assert lockstep(conn, peer) == {conn: None, peer: None}
    assert conn.suspended_at == Point.CLIENT_IDENTITY_REQUEST
    assert conn.certificate_requested and not conn.identity_committed
    conn.use_context(pki.policy().client_context(identity=identity))
    conn.resume(Point.DONE)
    handshake_ok(conn, peer)
    assert peer.peer_chain()[0] == identity.public.chain[0]
    assert identity.public.chain[0] in conn.own_certificate_message


def test_an_identity_before_the_handshake_started_is_refused(pki):
    conn = client(pki, Point.START)
    with pytest.raises(TlsFailure, match="the handshake has not started") as info:
        conn.use_context(pki.policy().client_context())
    assert info.value.kind == ErrorKind.CONFIGURATION and conn.state == CoreState.SUSPENDED


def test_no_certificate_request_stops_with_none(pki, version):
    conn, peer = client(pki, Point.CLIENT_IDENTITY_REQUEST), server(pki, version)
    lockstep(conn, peer)
    assert conn.suspended_at == Point.CLIENT_IDENTITY_REQUEST
    assert not conn.certificate_requested
    conn.resume(Point.DONE)
    handshake_ok(conn, peer)


def test_server_stops_at_the_client_hello_before_choosing_a_context(pki, version):
    seen = []
    leaf = pki.leaf("localhost")

    def choose(hello):
        seen.append(hello)
        return pki.server_context(leaf, version)
    peer = TlsCore(choose, server_side=True, run_until=Point.CLIENT_HELLO)
    conn = client(pki, Point.DONE, alpn_ids=("h2", "http/1.1"))
    lockstep(conn, peer)
    assert peer.suspended_at == Point.CLIENT_HELLO and not peer.started and seen == []
    hello = peer.client_hello
    assert hello.server_name == "localhost"
    assert hello.alpn_ids == (b"h2", b"http/1.1")
    assert 0x1301 in hello.cipher_suites and 0x0304 in hello.versions
    assert peer.ciphertext_to_send() == b""
    peer.resume(Point.DONE)
    handshake_ok(conn, peer)
    assert seen == [hello]


@pytest.mark.parametrize("answer", ["trusted", "none", "untrusted"])
def test_server_stops_once_the_client_certificate_is_verified(pki, version, answer):
    leaf = {"trusted": pki.leaf("client.example"), "none": None,
            "untrusted": pki.leaf("client.example", trusted=False)}[answer]
    context = pki.policy().client_context()
    if leaf is not None:
        leaf.configure_cert(context)
    conn = TlsCore(context, server_hostname="localhost")
    peer = server(pki, version, run_until=Point.CLIENT_CERTIFICATE,
                  client_auth=ssl.CERT_OPTIONAL)
    errors = lockstep(conn, peer)
    if answer == "untrusted":
        assert errors[peer].kind == "certificate"
        return
    assert errors[peer] is None
    assert peer.suspended_at == Point.CLIENT_CERTIFICATE
    chain = peer.peer_chain()  # as the client sent it (trustme adds its CA)
    assert chain[:1] == der_chain(leaf)[:1] if leaf else chain == ()
    assert peer.ciphertext_to_send() == b""
    peer.resume(Point.DONE)
    handshake_ok(conn, peer)


@pytest.mark.parametrize("certificate", [False, True], ids=["none", "certificate"])
def test_a_resumed_client_shows_the_certificate_it_sent_when_the_session_was_made(
        pki, version, certificate):
    """A resumed handshake has no Certificate message; the session keeps the
    leaf, so a guest that requires one does not refuse a client it accepted."""
    leaf = pki.leaf("client.example") if certificate else None
    peer, core = resumed_session(
        pki.client_context(version, leaf),
        pki.server_context(pki.leaf("localhost"), version, client_auth=ssl.CERT_OPTIONAL),
        run_until=Point.CLIENT_CERTIFICATE)
    assert core.suspended_at == Point.CLIENT_CERTIFICATE
    assert core.peer_chain() == (der_chain(leaf)[:1] if leaf else ())
    core.resume(Point.DONE)
    handshake_ok(peer, core)


def test_abort_replaces_the_handshake_with_an_alert(pki, version):
    conn, peer = client(pki, Point.SERVER_CERTIFICATE), server(pki, version)
    lockstep(conn, peer)
    conn.abort()
    assert conn.state == "broken" and conn.error.kind == "aborted"
    assert conn.ciphertext_to_send() == ACCESS_DENIED_ALERT
    assert conn.ciphertext_to_send() == b""
    peer.receive_ciphertext(ACCESS_DENIED_ALERT)
    with pytest.raises(TlsFailure):
        peer.handshake()


def test_post_handshake_authentication(pki):
    identity = pki.identity("client.example")
    context = pki.server_context(pki.leaf("localhost"), "1.3", client_auth=ssl.CERT_OPTIONAL)
    context.post_handshake_auth = True
    peer = TlsCore(context, server_side=True)
    conn = TlsCore(
        pki.policy().client_context(identity=identity, post_handshake_auth=True),
        server_hostname="localhost")
    handshake_ok(conn, peer)
    assert peer.peer_chain() == ()  # not asked in the handshake
    peer.request_client_certificate()
    assert peer.post_handshake_request
    flush(peer, conn)
    assert conn.read(10) is None  # takes the request, answers it
    flush(conn, peer)
    assert peer.read_ready() is False  # no application data, but the answer was read
    assert not peer.post_handshake_request
    assert peer.peer_chain()[0] == identity.public.chain[0]


@pytest.mark.parametrize("case", ["not-requested", "requested", "requested-after-close"])
def test_a_key_update_asking_for_ours_is_answered_by_the_read_that_took_it(pki, case):
    """TLS 1.3 only. OpenSSL 3 writes its KeyUpdate answer only when asked to
    write: the core asks (an empty write) right after the read, so a guest
    that only reads does not keep the peer waiting. Once this side has sent
    close_notify there is nothing to answer with, and reading goes on."""
    peer = PlainSSLPeer(pki.server_context(pki.leaf("localhost"), "1.3"), server_side=True)
    conn = client(pki, Point.DONE)
    handshake_ok(conn, peer)
    if case == "requested-after-close":
        conn.close()
        flush(conn, peer)
    assert LIBSSL.SSL_key_update(ssl_pointer(peer, 0x0304), int(case != "not-requested")) == 1
    peer.write(b"hello")
    flush(peer, conn)
    assert conn.read(100) == b"hello"
    answer = conn.ciphertext_to_send()
    assert bool(answer) == (case == "requested")
    if answer:
        peer.receive_ciphertext(answer)
        assert peer.read(100) is None  # the answer, taken without error
        conn.write(b"after")  # under the key the answer announced
        flush(conn, peer)
        assert peer.read(100) == b"after"
    assert conn.error is None


def test_post_handshake_authentication_is_refused_on_tls_1_2(pki):
    context = pki.server_context(pki.leaf("localhost"), "1.2", client_auth=ssl.CERT_OPTIONAL)
    context.post_handshake_auth = True
    peer = TlsCore(context, server_side=True)
    conn = TlsCore(pki.policy().client_context(post_handshake_auth=True),
                         server_hostname="localhost")
    handshake_ok(conn, peer)
    with pytest.raises(TlsFailure, match="post-handshake authentication is not possible"):
        peer.request_client_certificate()
    assert peer.state == "open" and not peer.post_handshake_request


def test_garbage_instead_of_a_client_hello_gets_openssl_s_verdict(pki):
    peer = TlsCore(lambda hello: pki.server_context(pki.leaf("localhost")),
                         server_side=True, run_until=Point.CLIENT_HELLO)
    peer.resume(Point.CLIENT_HELLO)
    peer.receive_ciphertext(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(TlsFailure, match="http request") as info:
        peer.handshake()
    assert info.value.kind == "not-tls"


def test_a_server_without_a_context_fails_with_an_alert(pki, version):
    def refuse(hello):
        raise TlsFailure("no identity configured", kind="configuration")
    peer = TlsCore(refuse, server_side=True)
    conn = client(pki, Point.DONE)
    errors = lockstep(conn, peer)
    assert str(errors[peer]) == "no identity configured"
    assert errors[conn].kind == "alert"


def test_a_server_whose_context_factory_raises_value_error_refuses_with_internal_error(
        pki, version, tmp_path):
    """A context that cannot be built (here an unreadable client CA file) is a
    configuration error; the client that sent its hello is told that
    nothing it did is wrong (internal_error)."""
    missing = str(tmp_path / "no-such-ca.pem")
    identity = pki.identity("localhost")

    def unreadable_client_cas(hello):
        return TlsPolicy(client_ca_files=[missing]).server_context(
            [identity], client_auth=ClientAuth.IN_HANDSHAKE)
    peer = TlsCore(unreadable_client_cas, server_side=True)
    context = pki.policy().client_context()
    context.maximum_version = TLS_VERSIONS[version]
    conn = TlsCore(context, server_hostname="localhost")
    assert conn.handshake() is False
    peer.receive_ciphertext(conn.ciphertext_to_send())  # the ClientHello
    with pytest.raises(TlsFailure) as info:
        peer.handshake()
    assert str(info.value) == f"client CA file not found: {missing}"
    assert info.value.kind == ErrorKind.CONFIGURATION
    assert peer.state == "broken" and peer.error is info.value
    assert peer.ciphertext_to_send() == INTERNAL_ERROR_ALERT
    conn.receive_ciphertext(INTERNAL_ERROR_ALERT)
    with pytest.raises(TlsFailure) as refused:
        conn.handshake()
    assert refused.value.kind == "alert" and refused.value.alert == "internal error"


def test_a_client_whose_context_factory_raises_value_error_fails_without_an_alert(
        pki, version, tmp_path):
    """A client has sent nothing when its context cannot be built: the failure
    is a configuration error and no byte goes to the server."""
    missing = str(tmp_path / "no-such-ca.pem")
    conn = TlsCore(lambda hello: TlsPolicy(ca_files=[missing]).client_context(),
                         server_hostname="localhost")
    peer = server(pki, version)
    errors = lockstep(conn, peer)
    assert str(errors[conn]) == f"CA file not found: {missing}"
    assert errors[conn].kind == ErrorKind.CONFIGURATION
    assert conn.state == "broken" and conn.ciphertext_to_send() == b""
    assert errors[peer] is None and not peer.started  # the server never heard from it


# -- the stop table itself, without OpenSSL -------------------------------------

TLS_1_2, TLS_1_3 = 0x0303, 0x0304
CERTIFICATE = bytes.fromhex("0b00000a" "000007" "000004" "30020500")  # one (tiny) certificate
EMPTY = {TLS_1_2: bytes.fromhex("0b000003" "000000"), TLS_1_3: bytes.fromhex("0b000004" "00000000")}


def message_for(message_type: int, version: int) -> tuple[int, bytes]:
    if message_type == EMPTY_CERTIFICATE:
        return HandshakeType.CERTIFICATE, EMPTY[version]
    if message_type == HandshakeType.CERTIFICATE:
        return message_type, CERTIFICATE
    return message_type, b""


@pytest.mark.parametrize(("key", "version"), [
    (key, version) for key in sorted(STOPS, key=str) for version in (TLS_1_2, TLS_1_3)
    if key[3] in (ANY_VERSION, version)])
def test_each_row_of_the_stop_table_reaches_its_points(key, version):
    role, direction, message_type, _ = key
    progress = Progress(role, Point.DONE)
    wire_type, message = message_for(message_type, version)
    progress.note(direction, version, wire_type, message)
    expected = STOPS.get((role, direction, message_type, version), STOPS[key])
    assert {point for point in Point if progress.reached(point)} == {Point.START, *expected}
    assert progress.certificate_requested == (
        role is Role.CLIENT and message_type == HandshakeType.CERTIFICATE_REQUEST)


@pytest.mark.parametrize(("role", "message_type", "message"), [
    (Role.CLIENT, HandshakeType.SERVER_HELLO, b""),
    (Role.CLIENT, HandshakeType.CERTIFICATE_VERIFY, b""),
    (Role.SERVER, HandshakeType.CLIENT_HELLO, b""),
    (Role.SERVER, HandshakeType.CERTIFICATE, CERTIFICATE),  # the stop is at its CertificateVerify
])
def test_messages_outside_the_table_reach_nothing(role, message_type, message):
    progress = Progress(role, Point.DONE)
    progress.note(Direction.READ, TLS_1_3, message_type, message)
    assert [point for point in Point if progress.reached(point)] == [Point.START]


def test_after_the_handshake_only_the_servers_request_and_the_own_certificate_change():
    server, client = Progress(Role.SERVER, Point.DONE), Progress(Role.CLIENT, Point.DONE)
    for progress in (server, client):
        progress.finish()
    server.post_handshake_request = True
    client.note(Direction.READ, TLS_1_3, HandshakeType.CERTIFICATE_REQUEST, b"")
    assert not client.certificate_requested  # answered with the identity it has
    client.note(Direction.WRITE, TLS_1_3, HandshakeType.CERTIFICATE, CERTIFICATE)
    assert client.own_certificate == CERTIFICATE
    server.note(Direction.READ, TLS_1_3, HandshakeType.CERTIFICATE, CERTIFICATE)
    assert server.post_handshake_request
    server.note(Direction.READ, TLS_1_3, HandshakeType.FINISHED, b"")
    assert not server.post_handshake_request


def test_what_a_failed_call_reported_is_discarded():
    progress = Progress(Role.CLIENT, Point.SERVER_CERTIFICATE)
    progress.observe("read", TLS_1_3, HandshakeType.CERTIFICATE, CERTIFICATE)
    progress.discard()
    progress.commit()
    assert not progress.reached(Point.SERVER_CERTIFICATE) and not progress.at_limit()
    progress.observe("read", TLS_1_3, HandshakeType.CERTIFICATE, CERTIFICATE)
    progress.commit()
    assert progress.reached(Point.SERVER_CERTIFICATE) and progress.at_limit()


def handshake_record(*message_types: int) -> bytes:
    body = b"".join(bytes((kind, 0, 0, 0)) for kind in message_types)
    return bytes((ContentType.HANDSHAKE, 3, 3)) + len(body).to_bytes(2, "big") + body


@pytest.mark.parametrize(("role", "limit", "held"), [
    (Role.CLIENT, Point.CLIENT_IDENTITY_REQUEST, True),
    (Role.CLIENT, Point.SERVER_CERTIFICATE, False),
    (Role.CLIENT, Point.DONE, False),
    (Role.SERVER, Point.CLIENT_IDENTITY_REQUEST, False),
])
def test_a_plaintext_certificate_request_is_held_only_at_its_own_stop(role, limit, held):
    progress = Progress(role, limit)
    record = handshake_record(HandshakeType.CERTIFICATE, HandshakeType.CERTIFICATE_REQUEST)
    assert progress.admit(record) is not held
    assert (progress.take_held() == record) is held
    assert progress.reached(Point.CLIENT_IDENTITY_REQUEST) is held
    assert progress.certificate_requested is held


def test_nothing_is_held_once_the_peer_encrypts():
    progress = Progress(Role.CLIENT, Point.CLIENT_IDENTITY_REQUEST)
    assert progress.admit(bytes((ContentType.CHANGE_CIPHER_SPEC, 3, 3, 0, 1, 1)))
    assert progress.admit(handshake_record(HandshakeType.CERTIFICATE_REQUEST))
