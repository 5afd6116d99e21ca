"""Unit tests for the sans-IO TLS core and the trust policy.

Real TLS (OpenSSL through the ``ssl`` module), no mocks, no wasmtime: two
endpoints are wired back to back through an in-memory "lockstep" pump that
moves ciphertext between them until neither side makes progress.  Every TLS
test runs once with TLS 1.2 and once with TLS 1.3 (the server is pinned to
the version).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import ssl
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lockstep import (
    LIBSSL,
    PlainSSLPeer,
    flush,
    handshake_ok,
    lockstep,
    read_all,
    send,
    ssl_pointer,
)
from pki import TLS_VERSIONS, Pki, der_chain

from wasi_tls_host.tls import CoreState, TlsCore, TlsFailure, TlsPolicy

ALERT_RECORD = 0x15  # TLS record content type "alert"
APPLICATION_DATA_RECORD = 0x17  # TLS 1.3 hides encrypted alerts in this type
HANDSHAKE_FAILURE_ALERT = "peer sent alert: handshake failure [SSLV3_ALERT_HANDSHAKE_FAILURE]"
PROTOCOL_VERSION_ALERT = "peer sent alert: protocol version [TLSV1_ALERT_PROTOCOL_VERSION]"


def looks_like_alert(data: bytes, version: str) -> bool:
    """One small record that is (or, in TLS 1.3, may be) an alert."""
    if not data or len(data) > 64:
        return False
    if version == "1.3":
        return data[0] in (ALERT_RECORD, APPLICATION_DATA_RECORD)
    return data[0] == ALERT_RECORD


# ----------------------------------------------------------------------------
# certificates and contexts


class CorePki:
    """The shared test PKI (tests/pki.py) for this module: its localhost/127.0.0.1
    leaf and its expired one, served by `Pki.server_context` (which keeps
    ragged EOFs visible)."""

    def __init__(self, shared: Pki):
        self.shared = shared
        self.ca_file = str(shared.ca_file)
        self.leaf_der = der_chain(shared["localhost"])[0]

    def server(self, version: str, *, expired: bool = False) -> ssl.SSLContext:
        return self.shared.server_context(self.shared["expired" if expired else "localhost"],
                                          version)

    def client(self, *, other_ca: bool = False, **kwargs) -> ssl.SSLContext:
        # A new policy each time: a policy caches its contexts, and tests
        # change the context they get.
        if other_ca:
            policy = TlsPolicy(ca_files=[str(self.shared.untrusted_ca_file)])
        else:
            policy = self.shared.policy()
        return policy.client_context(**kwargs)


@pytest.fixture(scope="module")
def core_pki(pki: Pki) -> CorePki:
    return CorePki(pki)


def make_pair(
    core_pki: CorePki, version: str, *, hostname="localhost", client_ctx=None, server_ctx=None,
    **client_kw
):
    client = TlsCore(client_ctx or core_pki.client(), server_hostname=hostname, **client_kw)
    server = TlsCore(server_ctx or core_pki.server(version), server_side=True)
    return client, server


# ----------------------------------------------------------------------------
# handshake


def test_handshake_success_reports_version(core_pki, version):
    client, server = make_pair(core_pki, version)
    assert client.state == CoreState.HANDSHAKING == "handshaking"
    assert client.version() is None and client.cipher() is None
    assert client.peer_certificate_der() is None and client.alpn_protocol() is None
    handshake_ok(client, server)
    for conn in (client, server):
        assert conn.state == "open"
        assert conn.handshake_complete
        assert conn.handshake() is True  # idempotent
        assert conn.version() == f"TLSv{version}"
        assert conn.cipher()[1] == f"TLSv{version}"
        assert conn.alpn_protocol() is None
    assert client.peer_certificate_der() == core_pki.leaf_der
    assert server.peer_certificate_der() is None  # no client certificate


def test_handshake_against_ip_address(core_pki, version):
    client, server = make_pair(core_pki, version, hostname="127.0.0.1")
    handshake_ok(client, server)
    assert client.version() == f"TLSv{version}"


def test_alpn(core_pki, version):
    server_ctx = core_pki.server(version)
    server_ctx.set_alpn_protocols(["http/1.1"])
    client_ctx = core_pki.client(alpn_ids=("h2", "http/1.1"))
    client, server = make_pair(core_pki, version, client_ctx=client_ctx, server_ctx=server_ctx)
    handshake_ok(client, server)
    assert client.alpn_protocol() == server.alpn_protocol() == "http/1.1"


def test_handshake_byte_by_byte(core_pki, version):
    client, server = make_pair(core_pki, version)
    handshake_ok(client, server, chunk_sizes=(1,))
    assert client.version() == server.version() == f"TLSv{version}"
    payload = os.urandom(3000)
    assert send(client, server, payload, chunk_sizes=(1,)) == payload
    assert send(server, client, payload, chunk_sizes=(1,), max_bytes=7) == payload


def test_handshake_against_plain_sslobject_server(core_pki, version):
    client = TlsCore(core_pki.client(), server_hostname="localhost")
    server = PlainSSLPeer(core_pki.server(version), server_side=True)
    handshake_ok(client, server)
    assert client.version() == server.obj.version() == f"TLSv{version}"
    payload = os.urandom(50_000)
    assert send(client, server, payload) == payload
    assert send(server, client, payload) == payload
    server.close()
    flush(server, client)
    assert read_all(client) == b""
    assert client.read(10) == b""
    client.close()
    flush(client, server)
    assert server.read(10) == b""


def test_plain_sslobject_client_against_server(core_pki, version):
    client = PlainSSLPeer(core_pki.client(), server_side=False, server_hostname="localhost")
    server = TlsCore(core_pki.server(version), server_side=True)
    handshake_ok(client, server)
    payload = os.urandom(20_000)
    assert send(client, server, payload) == payload
    assert send(server, client, payload) == payload


def test_read_and_write_before_handshake(core_pki, version):
    client, server = make_pair(core_pki, version)
    assert client.read(100) is None  # drives the handshake: ClientHello queued
    client.write(b"early")  # kept until the handshake completes
    assert server.read(100) is None
    handshake_ok(client, server)
    flush(client, server)
    assert read_all(server) == b"early"


def test_plaintext_written_before_the_context_is_chosen_waits_for_the_handshake(core_pki, version):
    """A server whose context comes from a factory has no SSLObject until the
    ClientHello: plaintext written before then is kept, not handed to OpenSSL."""
    client = TlsCore(core_pki.client(), server_hostname="localhost")
    server = TlsCore(lambda hello: core_pki.server(version), server_side=True)
    server.write(b"early")
    assert server.ciphertext_to_send() == b""
    handshake_ok(client, server)
    flush(server, client)
    assert read_all(client) == b"early"


def test_wants_ciphertext(core_pki, version):
    client, server = make_pair(core_pki, version)
    assert not client.wants_ciphertext()
    assert client.handshake() is False
    assert client.wants_ciphertext()
    assert server.handshake() is False and server.wants_ciphertext()
    flush(client, server)
    assert not server.wants_ciphertext()  # new input arrived: retry
    handshake_ok(client, server)
    assert client.read(100) is None
    assert client.wants_ciphertext()
    server.write(b"x" * 10)
    flush(server, client)
    assert not client.wants_ciphertext()
    assert client.read_ready()
    assert client.read(4) == b"xxxx"
    assert not client.wants_ciphertext()  # plaintext still buffered
    assert client.read(100) == b"x" * 6
    assert client.read(100) is None and client.wants_ciphertext()
    assert not client.read_ready()
    client.receive_eof()
    assert not client.wants_ciphertext()


def test_no_openssl_step_until_new_ciphertext_arrives(core_pki, version):
    """The host pumps on every poll; while the peer has sent nothing new,
    handshake() answers from the core's state without calling OpenSSL."""
    client, server = make_pair(core_pki, version)
    assert client.handshake() is False  # the ClientHello is queued
    steps = 0
    do_handshake = client._obj.do_handshake

    def counted() -> None:
        nonlocal steps
        steps += 1
        do_handshake()
    client._obj.do_handshake = counted
    for _ in range(5):
        assert client.handshake() is False and client.wants_ciphertext()
    assert steps == 0
    handshake_ok(client, server)
    assert steps >= 1 and client.version() == f"TLSv{version}"


# ----------------------------------------------------------------------------
# application data


@pytest.mark.parametrize("size", [0, 1, 16383, 16384, 16385])
def test_data_both_ways(core_pki, version, size):
    client, server = make_pair(core_pki, version)
    handshake_ok(client, server)
    payload = os.urandom(size)
    before = client.ciphertext_pending()
    assert send(client, server, payload) == payload
    assert send(server, client, payload[::-1]) == payload[::-1]
    if size == 0:
        assert before == 0
        client.write(payload)
        assert client.ciphertext_to_send() == b""  # write(b"") produces nothing


def test_one_mebibyte_sha256(core_pki, version):
    client, server = make_pair(core_pki, version)
    handshake_ok(client, server)
    payload = os.urandom(1 << 20)
    digest = hashlib.sha256(payload).hexdigest()
    got = send(client, server, payload)
    assert len(got) == len(payload) and hashlib.sha256(got).hexdigest() == digest
    got = send(server, client, payload)
    assert hashlib.sha256(got).hexdigest() == digest


def test_many_small_writes_coalesce_in_order(core_pki, version):
    client, server = make_pair(core_pki, version)
    handshake_ok(client, server)
    parts = [bytes([i]) * (i + 1) for i in range(200)]
    for p in parts:
        client.write(p)
    flush(client, server)
    assert read_all(server, max_bytes=1000) == b"".join(parts)


def test_read_rejects_nonpositive_size(core_pki, version):
    client, server = make_pair(core_pki, version)
    handshake_ok(client, server)
    with pytest.raises(ValueError):
        client.read(0)


# ----------------------------------------------------------------------------
# closing


def test_close_notify_peer_reads_empty(core_pki, version):
    client, server = make_pair(core_pki, version)
    handshake_ok(client, server)
    client.write(b"last words")
    client.close()
    assert client.state == "write-closed" and client.close_notify_sent
    flush(client, server)
    assert server.read(100) == b"last words"
    assert server.read(100) == b""
    assert server.read(100) == b""
    assert server.peer_closed and not server.wants_ciphertext()
    # half-close: the server may still answer; the client still reads
    server.write(b"reply")
    server.close()
    flush(server, client)
    assert client.read(100) == b"reply"
    assert client.read(100) == b""
    assert client.read(100) == b""


def test_close_is_idempotent_and_write_after_close_fails(core_pki, version):
    client, server = make_pair(core_pki, version)
    handshake_ok(client, server)
    client.close()
    first = client.ciphertext_to_send()
    assert looks_like_alert(first, version)
    client.close()
    client.close()
    assert client.ciphertext_to_send() == b""  # close_notify exactly once
    with pytest.raises(TlsFailure, match="^connection closed for writing$") as info:
        client.write(b"more")
    assert info.value.kind == "closed"
    with pytest.raises(TlsFailure, match="connection closed for writing"):
        client.write(b"")
    assert client.state == "write-closed"  # a usage error does not break the connection
    server.receive_ciphertext(first)
    assert server.read(10) == b""


def test_close_with_unread_application_data_pending(core_pki, version):
    # unwrap() would fail with APPLICATION_DATA_AFTER_CLOSE_NOTIFY if the
    # core did not drain the incoming buffer first.
    client, server = make_pair(core_pki, version)
    handshake_ok(client, server)
    server.write(b"unread-1")
    server.write(b"unread-2")
    data = server.ciphertext_to_send()
    client.receive_ciphertext(data[:-3])  # the second record is incomplete
    client.close()
    assert client.close_notify_sent
    client.receive_ciphertext(data[-3:])
    assert read_all(client) == b"unread-1unread-2"
    flush(client, server)
    assert server.read(100) == b""


def test_close_during_handshake(core_pki, version):
    client, server = make_pair(core_pki, version)
    assert client.handshake() is False
    client.ciphertext_to_send()
    client.close()
    assert client.state == "closed-in-handshake" and not client.handshake_complete
    assert client.ciphertext_to_send() == b""
    with pytest.raises(TlsFailure, match="closed before the handshake completed"):
        client.handshake()
    assert client.read(10) == b""


def test_both_sides_close(core_pki, version):
    client, server = make_pair(core_pki, version)
    handshake_ok(client, server)
    client.close()
    server.close()
    flush(client, server)
    flush(server, client)
    assert client.read(10) == b"" and server.read(10) == b""
    assert client.read(10) == b"" and server.read(10) == b""


# ----------------------------------------------------------------------------
# transport EOF


def test_eof_without_close_notify_is_truncation(core_pki, version):
    client, server = make_pair(core_pki, version)
    handshake_ok(client, server)
    server.write(b"partial")
    flush(server, client)
    client.receive_eof()
    assert client.read(100) == b"partial"  # data before the EOF comes first
    with pytest.raises(TlsFailure) as info:
        client.read(100)
    assert str(info.value) == "peer closed without close_notify (truncated)"
    assert info.value.kind == "truncated"
    assert client.state == "truncated" and client.peer_closed
    assert client.read(100) == b""
    assert client.read(100) == b""
    with pytest.raises(TlsFailure, match="transport ended without close_notify"):
        client.write(b"x")
    client.close()  # nothing to say goodbye to; must not raise
    assert client.state == "closed"


def test_suppress_ragged_eofs(core_pki, version):
    client, server = make_pair(core_pki, version, suppress_ragged_eofs=True)
    handshake_ok(client, server)
    server.write(b"partial")
    flush(server, client)
    client.receive_eof()
    assert client.read(100) == b"partial"
    assert client.read(100) == b""
    assert client.read(100) == b""
    assert client.state == "truncated"  # read as a clean end, but OpenSSL cannot write
    with pytest.raises(TlsFailure, match="transport ended without close_notify"):
        client.write(b"x")


def test_eof_mid_handshake_client(core_pki, version):
    client, server = make_pair(core_pki, version)
    client.handshake()
    flush(client, server)
    server.handshake()
    flight = server.ciphertext_to_send()
    client.receive_ciphertext(flight[: len(flight) // 2])
    assert client.handshake() is False
    client.receive_eof()
    with pytest.raises(TlsFailure) as info:
        client.handshake()
    assert str(info.value) == "peer closed the connection during the handshake"
    assert info.value.kind == "eof"
    assert client.state == "broken"


def test_eof_mid_handshake_server(core_pki, version):
    client, server = make_pair(core_pki, version)
    client.handshake()
    hello = client.ciphertext_to_send()
    server.receive_ciphertext(hello[:10])
    assert server.handshake() is False
    server.receive_eof()
    with pytest.raises(TlsFailure, match="^peer closed the connection during the handshake$"):
        server.handshake()


def test_eof_before_anything(core_pki, version):
    client, _server = make_pair(core_pki, version)
    client.handshake()
    client.receive_eof()
    with pytest.raises(TlsFailure, match="peer closed the connection during the handshake"):
        client.handshake()


# ----------------------------------------------------------------------------
# verification failures


def test_unknown_ca(core_pki, version):
    client, server = make_pair(core_pki, version, client_ctx=core_pki.client(other_ca=True))
    errors = lockstep(client, server)
    err = errors[client]
    assert isinstance(err, TlsFailure) and err.kind == "certificate"
    assert str(err) == (
        "certificate verify failed: unable to get local issuer certificate (server name: localhost)"
    )
    assert err.verify_code == 20
    # the client's alert reached the server
    assert isinstance(errors[server], TlsFailure)
    assert str(errors[server]).startswith("peer sent alert: unknown ca")
    assert errors[server].alert == "unknown ca"


def test_hostname_mismatch(core_pki, version):
    client, server = make_pair(core_pki, version, hostname="wrong.example")
    errors = lockstep(client, server)
    assert str(errors[client]) == (
        "certificate verify failed: Hostname mismatch, certificate is not valid for "
        "'wrong.example'. (server name: wrong.example)"
    )
    assert errors[client].kind == "certificate"
    assert "peer sent alert:" in str(errors[server])


def test_expired_certificate(core_pki, version):
    client, server = make_pair(core_pki, version, server_ctx=core_pki.server(version, expired=True))
    errors = lockstep(client, server)
    assert str(errors[client]) == (
        "certificate verify failed: certificate has expired (server name: localhost)"
    )
    assert str(errors[server]).startswith("peer sent alert: certificate expired")


def test_failed_handshake_keeps_alert_for_the_transport(core_pki, version):
    client, server = make_pair(core_pki, version, client_ctx=core_pki.client(other_ca=True))
    for _ in range(3):
        try:
            client.handshake()
        except TlsFailure:
            break
        flush(client, server)
        server.handshake()
        flush(server, client)
    assert client.state == "broken"
    alert = client.ciphertext_to_send()
    assert looks_like_alert(alert, version)
    assert client.ciphertext_to_send() == b""


def test_client_certificate_required_but_missing(core_pki, version):
    server_ctx = core_pki.server(version)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(cafile=core_pki.ca_file)
    client, server = make_pair(core_pki, version, server_ctx=server_ctx)
    errors = lockstep(client, server)
    assert errors[server] is not None and errors[server].kind == "protocol"
    assert "peer did not return a certificate" in str(errors[server])
    if version == "1.3":
        # The client finished its side before the server judged it; the
        # alert arrives on the first read.
        assert errors[client] is None
        with pytest.raises(TlsFailure) as info:
            client.read(100)
        assert str(info.value) == (
            "peer sent alert: certificate required [TLSV13_ALERT_CERTIFICATE_REQUIRED]"
        )
    else:
        assert str(errors[client]).startswith("peer sent alert: handshake failure")
    assert client.state == "broken"


def test_client_certificate_verified_by_server(core_pki, version):
    other = core_pki.shared.untrusted_ca
    client_leaf = core_pki.shared.leaf("client.example", trusted=False)
    server_ctx = core_pki.server(version)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(cafile=core_pki.ca_file)  # does not trust `other`
    client_ctx = core_pki.client()
    client_leaf.configure_cert(client_ctx)
    client, server = make_pair(core_pki, version, client_ctx=client_ctx, server_ctx=server_ctx)
    errors = lockstep(client, server)
    assert str(errors[server]) == (
        "certificate verify failed: unable to get local issuer certificate (client certificate)"
    )
    # now trust it
    server_ctx = core_pki.server(version)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    other.configure_trust(server_ctx)
    client, server = make_pair(core_pki, version, client_ctx=client_ctx, server_ctx=server_ctx)
    handshake_ok(client, server)
    assert server.peer_certificate_der() == ssl.PEM_cert_to_DER_cert(
        client_leaf.cert_chain_pems[0].bytes().decode()
    )


# ----------------------------------------------------------------------------
# protocol failures


@pytest.mark.parametrize("legacy", ["TLSv1", "TLSv1_1"])
def test_legacy_only_server_is_refused(core_pki, version, legacy):
    # OpenSSL 3 refuses TLS 1.0/1.1 at its default security level ("no
    # ciphers available"); server_context lowers it to 0 when asked for a
    # legacy minimum so that the server really offers the old version.
    # Here the *client* is pinned to a maximum of 1.2 or 1.3 (its minimum is
    # the policy's 1.2):
    # * max 1.3: the ClientHello carries supported_versions (1.3, 1.2); the
    #   server finds no overlap and answers with a protocol_version alert.
    # * max 1.2: no supported_versions extension, so the server tries to
    #   negotiate down to its legacy version, but the client's default
    #   cipher list has no suite usable below TLS 1.2 (no SHA-1 CBC suites):
    #   the server fails with "no shared cipher" and sends handshake_failure.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = getattr(ssl.TLSVersion, legacy)
        server_ctx = core_pki.shared.server_context(core_pki.shared["localhost"], legacy=True)
        server_ctx.minimum_version = server_ctx.maximum_version = old
    client_ctx = core_pki.client()
    client_ctx.maximum_version = TLS_VERSIONS[version]
    client, server = make_pair(core_pki, version, client_ctx=client_ctx, server_ctx=server_ctx)
    errors = lockstep(client, server)
    assert client.state == server.state == "broken"
    if version == "1.3":
        assert str(errors[client]) == PROTOCOL_VERSION_ALERT
        assert errors[client].kind == "version"
        assert str(errors[server]) == (
            "no TLS protocol version in common with the peer: "
            "unsupported protocol [UNSUPPORTED_PROTOCOL]"
        )
        assert errors[server].kind == "version"
    else:
        assert str(errors[client]) == HANDSHAKE_FAILURE_ALERT
        assert errors[client].kind == "alert"
        assert str(errors[server]) == "TLS handshake failed: no shared cipher [NO_SHARED_CIPHER]"


def test_no_common_key_exchange_group_is_a_handshake_failure_alert(core_pki, version):
    # Python 3.11 cannot restrict TLS 1.3 cipher suites, but a single
    # disjoint ECDH group on each side fails both versions the same way.
    server_ctx = core_pki.server(version)
    server_ctx.set_ecdh_curve("prime256v1")
    client_ctx = core_pki.client()
    client_ctx.set_ecdh_curve("secp384r1")
    client, server = make_pair(core_pki, version, client_ctx=client_ctx, server_ctx=server_ctx)
    errors = lockstep(client, server)
    assert str(errors[client]) == HANDSHAKE_FAILURE_ALERT
    assert errors[client].alert == "handshake failure"
    assert errors[client].kind == "alert"
    expected = "no shared cipher" if version == "1.2" else "no suitable key share"
    assert str(errors[server]).startswith(f"TLS handshake failed: {expected}")


def test_garbage_from_server(core_pki, version):
    client, _server = make_pair(core_pki, version)
    client.handshake()
    client.ciphertext_to_send()
    client.receive_ciphertext(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(TlsFailure) as info:
        client.handshake()
    assert str(info.value) == (
        "peer sent data that is not TLS: wrong version number [WRONG_VERSION_NUMBER]"
    )
    assert info.value.kind == "not-tls"


def test_garbage_from_client(core_pki, version):
    _client, server = make_pair(core_pki, version)
    server.receive_ciphertext(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    with pytest.raises(TlsFailure, match="^peer sent data that is not TLS: http request") as info:
        server.handshake()
    assert info.value.kind == "not-tls"


def test_garbage_after_handshake(core_pki, version):
    client, server = make_pair(core_pki, version)
    handshake_ok(client, server)
    client.read(10)  # consume session tickets
    client.receive_ciphertext(b"\x17\x03\x03\x00\x20" + b"\x00" * 32)  # bogus app-data record
    with pytest.raises(TlsFailure) as info:
        client.read(100)
    assert info.value.kind == "protocol"
    assert "bad record mac" in str(info.value).lower() or "decrypt" in str(info.value).lower()
    assert client.state == "broken"


# ----------------------------------------------------------------------------
# sticky broken state


def test_broken_state_is_sticky(core_pki, version):
    client, server = make_pair(core_pki, version, hostname="wrong.example")
    errors = lockstep(client, server)
    first = errors[client]
    assert client.state == CoreState.BROKEN == "broken"
    assert client.error is first
    for op in (
        client.handshake,
        lambda: client.read(10),
        lambda: client.write(b"x"),
        lambda: client.write(b""),
        lambda: client.receive_ciphertext(b"\x16\x03\x03"),
    ):
        with pytest.raises(TlsFailure) as info:
            op()
        assert info.value is first
    client.close()  # no-op, does not raise
    client.receive_eof()  # no-op
    assert client.ciphertext_to_send() == b""
    assert not client.wants_ciphertext()
    assert client.read_ready()
    assert client.state == "broken"


def test_error_after_buffered_plaintext_is_delivered_later(core_pki, version):
    client, server = make_pair(core_pki, version)
    handshake_ok(client, server)
    server.write(b"good data")
    flush(server, client)
    client.receive_ciphertext(b"\x17\x03\x03\x00\x20" + b"\x00" * 32)
    assert client.read(100) == b"good data"
    with pytest.raises(TlsFailure) as info:
        client.read(100)
    with pytest.raises(TlsFailure) as again:
        client.read(100)
    assert again.value is info.value


def test_receive_after_eof_is_a_usage_error(core_pki, version):
    client, _server = make_pair(core_pki, version)
    client.receive_eof()
    client.receive_eof()  # idempotent
    client.receive_ciphertext(b"")  # empty data ignored
    with pytest.raises(ValueError):
        client.receive_ciphertext(b"x")


# ----------------------------------------------------------------------------
# random split points


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    version=st.sampled_from(sorted(TLS_VERSIONS)),
    chunks=st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=12),
    back_chunks=st.lists(st.integers(min_value=1, max_value=3000), min_size=1, max_size=12),
    payload=st.binary(min_size=0, max_size=40_000),
    read_size=st.integers(min_value=1, max_value=20_000),
)
def test_random_split_points_deliver_identical_plaintext(
    core_pki, version, chunks, back_chunks, payload, read_size
):
    client, server = make_pair(core_pki, version)
    handshake_ok(client, server, chunk_sizes=tuple(chunks))
    assert client.version() == f"TLSv{version}"
    forth = send(client, server, payload, chunk_sizes=tuple(chunks), max_bytes=read_size)
    assert forth == payload
    back = send(server, client, payload, chunk_sizes=tuple(back_chunks), max_bytes=read_size)
    assert back == payload
    server.close()
    flush(server, client, tuple(chunks))
    assert read_all(client) == b""
    assert client.read(read_size) == b""


# ----------------------------------------------------------------------------
# policy


def test_client_context_defaults(core_pki):
    ctx = TlsPolicy(ca_files=[core_pki.ca_file]).client_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname is True
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.cert_store_stats()["x509_ca"] == 1  # only the given CA, no certifi


def test_client_context_uses_certifi_by_default():
    ctx = TlsPolicy().client_context()
    assert ctx.cert_store_stats()["x509_ca"] > 50


def test_client_context_certifi_and_ca_file(core_pki):
    ctx = TlsPolicy(ca_files=[core_pki.ca_file], use_certifi=True).client_context()
    assert ctx.cert_store_stats()["x509_ca"] > 50


def test_missing_ca_file_names_it(tmp_path):
    missing = str(tmp_path / "nope.pem")
    with pytest.raises(ValueError) as info:
        TlsPolicy(ca_files=[missing]).client_context()
    assert missing in str(info.value) and "\n" not in str(info.value)


def test_bad_ca_file_names_it(tmp_path):
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("this is not a certificate\n")
    with pytest.raises(ValueError, match="bogus.pem"):
        TlsPolicy(ca_files=[str(bogus)]).client_context()
    with pytest.raises(ValueError, match="directory"):
        TlsPolicy(ca_files=[str(tmp_path)]).client_context()


@pytest.mark.parametrize("legacy", ["TLSv1", "TLSv1_1"])
def test_a_floor_below_tls_1_2_is_refused(legacy):
    with pytest.raises(ValueError) as info:
        TlsPolicy(minimum_version=getattr(ssl.TLSVersion, legacy))
    assert str(info.value) == "the TLS version floor cannot be below TLS 1.2"


def test_the_floor_reads_as_the_ssl_value_given_or_by_default():
    """The default floor is held without ssl until read (start-up); what a
    user reads, compares, copies and prints is what was given, or TLS 1.2."""
    default = TlsPolicy()
    assert default.minimum_version is ssl.TLSVersion.TLSv1_2
    assert default == TlsPolicy(minimum_version=ssl.TLSVersion.TLSv1_2)
    assert "minimum_version=<TLSVersion.TLSv1_2: 771>" in repr(default)
    assert dataclasses.fields(TlsPolicy)[6].name == "minimum_version"
    assert TlsPolicy.minimum_version == ssl.TLSVersion.TLSv1_2
    raised = TlsPolicy(minimum_version=ssl.TLSVersion.TLSv1_3)
    assert raised.minimum_version is ssl.TLSVersion.TLSv1_3
    assert dataclasses.replace(raised).minimum_version is ssl.TLSVersion.TLSv1_3
    assert raised.server_context([]).minimum_version == ssl.TLSVersion.TLSv1_3
    default.minimum_version = ssl.TLSVersion.TLSv1_3
    assert default == TlsPolicy(minimum_version=ssl.TLSVersion.TLSv1_3)


def test_a_keylog_file_that_cannot_be_opened_names_it(core_pki, tmp_path):
    keylog = str(tmp_path / "no-such-directory" / "keys.log")
    policy = TlsPolicy(ca_files=[core_pki.ca_file], keylog_file=keylog)
    with pytest.raises(ValueError) as info:
        policy.client_context()
    assert str(info.value) == (
        f"key log file cannot be opened: {keylog}: No such file or directory"
    )


def test_keylog_file_is_written(core_pki, version, tmp_path):
    keylog = tmp_path / "keys.log"
    ctx = TlsPolicy(ca_files=[core_pki.ca_file], keylog_file=str(keylog)).client_context()
    client, server = make_pair(core_pki, version, client_ctx=ctx)
    handshake_ok(client, server)
    text = keylog.read_text()
    label = "CLIENT_TRAFFIC_SECRET_0" if version == "1.3" else "CLIENT_RANDOM"
    assert label in text



# Renegotiation exists only in TLS 1.2, so these two run under 1.2 alone.
def test_the_host_client_refuses_a_servers_renegotiation(core_pki):
    """A server's HelloRequest gets a no_renegotiation alert, which the
    server takes as a refusal (OpenSSL 3 would follow it without
    OP_NO_RENEGOTIATION); the client's session goes on."""
    client = TlsCore(core_pki.client(), server_hostname="localhost")
    server = PlainSSLPeer(core_pki.server("1.2"), server_side=True)
    handshake_ok(client, server)
    assert LIBSSL.SSL_renegotiate(ssl_pointer(server, 0x0303)) == 1
    server.obj.do_handshake()  # sends the HelloRequest
    flush(server, client)
    assert client.read(100) is None  # nothing for the guest; the refusal is queued
    assert flush(client, server)
    with pytest.raises(ssl.SSLError) as refused:
        server.read(100)
    assert refused.value.reason == "NO_RENEGOTIATION"
    assert client.state is CoreState.OPEN


def test_a_host_server_refuses_a_clients_renegotiation(core_pki):
    policy = core_pki.shared.policy()
    context = policy.server_context([core_pki.shared.identity("localhost")])
    assert context.options & ssl.OP_NO_RENEGOTIATION
    server = TlsCore(context, server_side=True)
    client_context = ssl.create_default_context(cafile=core_pki.ca_file)
    client_context.maximum_version = ssl.TLSVersion.TLSv1_2
    client = PlainSSLPeer(client_context, server_side=False, server_hostname="localhost")
    handshake_ok(client, server)
    assert LIBSSL.SSL_renegotiate(ssl_pointer(client, 0x0303)) == 1
    with pytest.raises(ssl.SSLWantReadError):
        client.obj.do_handshake()  # sends a new ClientHello
    flush(client, server)
    assert server.read(100) is None
    assert flush(server, client)
    with pytest.raises(ssl.SSLError) as refused:
        client.obj.do_handshake()
    assert refused.value.reason == "NO_RENEGOTIATION"
