"""The host's own alerts as real OpenSSL peers read them, under TLS 1.2 and
1.3 (`tls.alerts`): the description each abort and refusal says, and the
protection each gets, exactly as the peer reads at that moment. Every peer
is Python's ssl, whose error names the alert it read."""

from __future__ import annotations

import ssl

import pytest
from lockstep import (
    ACCESS_DENIED_ALERT,
    LIBSSL,
    PlainSSLPeer,
    handshake_ok,
    lockstep,
    resumed_session,
)
from pki import Pki

from wasi_tls_host.tls import ClientAuth, ErrorKind, Point, TlsCore, TlsFailure, openssl
from wasi_tls_host.tls.records import AlertDescription, ContentType, alert_record

#: What OpenSSL names each alert it reads, by version.
CERTIFICATE_REQUIRED = {"1.2": "SSLV3_ALERT_HANDSHAKE_FAILURE",
                        "1.3": "TLSV13_ALERT_CERTIFICATE_REQUIRED"}
ACCESS_DENIED = "TLSV1_ALERT_ACCESS_DENIED"
#: A protected TLS 1.3 alert: header, two bytes and the inner type, the tag.
TLS13_ALERT_SIZE = 5 + 3 + 16


def what_the_peer_reads(peer: PlainSSLPeer, alert: bytes) -> str:
    """OpenSSL's reason for what `peer` read: the alert, or how it failed to read one."""
    peer.receive_ciphertext(alert)
    peer.receive_eof()
    with pytest.raises(ssl.SSLError) as info:
        if peer.handshake():
            peer.read(1)
    return info.value.reason


def python_client(pki: Pki, version: str, *, certificate: bool = False,
                  session: ssl.SSLSession | None = None, context: ssl.SSLContext | None = None):
    context = context or pki.client_context(version, pki.leaf("client.example")
                                            if certificate else None)
    return PlainSSLPeer(context, server_side=False, server_hostname="localhost", session=session)


def stopping_server(context: ssl.SSLContext) -> TlsCore:
    return TlsCore(context, server_side=True, run_until=Point.CLIENT_CERTIFICATE)


def asking_context(pki: Pki, version: str) -> ssl.SSLContext:
    return pki.server_context(pki.leaf("localhost"), version, client_auth=ssl.CERT_OPTIONAL)


# -- a server's abort at the client-certificate stop -------------------------------

@pytest.mark.parametrize("certificate", [False, True], ids=["none", "certificate"])
def test_a_server_abort_at_the_client_certificate_stop(pki, version, certificate):
    """TLS 1.3: the server's flight went out whole, so the alert is protected
    (the peer reads it, not "bad record type"). TLS 1.2: nothing of ours is
    encrypted yet, so it is plaintext. No certificate: the refusal the
    version prescribes; a certificate the guest refuses: access_denied."""
    peer = python_client(pki, version, certificate=certificate)
    core = stopping_server(asking_context(pki, version))
    assert lockstep(peer, core) == {peer: None, core: None}
    assert core.suspended_at == Point.CLIENT_CERTIFICATE
    core.abort()
    assert core.error.kind == ErrorKind.ABORTED
    alert = core.ciphertext_to_send()
    if version == "1.3":
        assert alert[0] == ContentType.APPLICATION_DATA and len(alert) == TLS13_ALERT_SIZE
    else:
        assert alert == alert_record(AlertDescription.ACCESS_DENIED if certificate
                                     else AlertDescription.HANDSHAKE_FAILURE)
    expected = ACCESS_DENIED if certificate else CERTIFICATE_REQUIRED[version]
    assert what_the_peer_reads(peer, alert) == expected


@pytest.mark.parametrize("suite", ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                   "TLS_CHACHA20_POLY1305_SHA256"])
def test_a_protected_tls13_alert_under_each_suite(pki, suite):
    context = pki.client_context("1.3")
    assert LIBSSL.SSL_CTX_set_ciphersuites(openssl.context_pointer(context), suite.encode())
    peer = python_client(pki, "1.3", context=context)
    core = stopping_server(asking_context(pki, "1.3"))
    lockstep(peer, core)
    assert peer.obj.cipher()[0] == suite
    core.abort()
    assert what_the_peer_reads(peer, core.ciphertext_to_send()) == CERTIFICATE_REQUIRED["1.3"]


# -- a server that resumed a session has sent its Finished --------------------------

def resumed_handshake(pki: Pki, version: str, client_context: ssl.SSLContext):
    """A client resuming a session with a core that stops at the
    client-certificate point, which comes after the core's Finished."""
    return resumed_session(client_context, asking_context(pki, version),
                           run_until=Point.CLIENT_CERTIFICATE)


@pytest.mark.parametrize("cipher, size", [
    ("ECDHE-ECDSA-AES128-GCM-SHA256", 5 + 8 + 2 + 16),
    ("ECDHE-ECDSA-AES256-GCM-SHA384", 5 + 8 + 2 + 16),
    ("ECDHE-ECDSA-CHACHA20-POLY1305", 5 + 2 + 16),
])
def test_a_resumed_tls12_server_protects_its_abort(pki, cipher, size):
    """The server's ChangeCipherSpec and Finished went out before the stop:
    the alert goes under the session's keys, after the Finished (sequence 1)."""
    context = pki.client_context("1.2")
    context.set_ciphers(cipher)
    peer, core = resumed_handshake(pki, "1.2", context)
    core.abort()
    alert = core.ciphertext_to_send()
    assert alert[0] == ContentType.ALERT and len(alert) == size
    assert what_the_peer_reads(peer, alert) == CERTIFICATE_REQUIRED["1.2"]


def test_a_resumed_tls13_server_drops_its_tickets_and_protects_its_abort(pki):
    """OpenSSL wrote session tickets after the resumed client's Finished; they
    are dropped, so the alert takes the sequence number the first had."""
    peer, core = resumed_handshake(pki, "1.3", pki.client_context("1.3"))
    core.abort()
    alert = core.ciphertext_to_send()
    assert len(alert) == TLS13_ALERT_SIZE
    assert what_the_peer_reads(peer, alert) == CERTIFICATE_REQUIRED["1.3"]


def test_a_cbc_suite_gets_no_alert_rather_than_a_record_the_peer_cannot_read(pki):
    context = pki.client_context("1.2")
    context.set_ciphers("ECDHE-ECDSA-AES128-SHA256")
    peer, core = resumed_handshake(pki, "1.2", context)
    core.abort()
    assert core.ciphertext_to_send() == b""
    assert what_the_peer_reads(peer, b"") == "UNEXPECTED_EOF_WHILE_READING"


# -- a client's abort ----------------------------------------------------------------

@pytest.mark.parametrize("stop", [Point.SERVER_CERTIFICATE, Point.CLIENT_IDENTITY_REQUEST])
@pytest.mark.parametrize("asked", [False, True], ids=["not-asked", "asked"])
def test_a_client_abort_at_either_stop_is_plaintext_access_denied(pki, version, stop, asked):
    """OpenSSL's client has written nothing since its hello at either stop
    (under TLS 1.3 it switches its write key only with its second flight),
    and the server takes a plaintext alert."""
    core = TlsCore(pki.policy().client_context(), server_hostname="localhost",
                   run_until=stop)
    peer = PlainSSLPeer(pki.server_context(
        pki.leaf("localhost"), version, client_auth=ssl.CERT_OPTIONAL if asked else
        ssl.CERT_NONE), server_side=True)
    assert lockstep(core, peer) == {core: None, peer: None}
    assert core.suspended_at == stop
    core.abort()
    alert = core.ciphertext_to_send()
    assert alert == ACCESS_DENIED_ALERT
    assert what_the_peer_reads(peer, alert) == ACCESS_DENIED


# -- bytes that are no ClientHello ---------------------------------------------------

def refuse(hello):
    raise TlsFailure("the server handshake has no identity", kind=ErrorKind.CONFIGURATION)


@pytest.mark.parametrize("junk, reason, alert", [
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP_REQUEST", b"", id="http"),
    pytest.param(bytes(range(64, 128)), "WRONG_VERSION_NUMBER", b"", id="not-tls"),
    pytest.param(bytes.fromhex("1603010008" "0100000401020304"), "LENGTH_MISMATCH",
                 bytes.fromhex("15030300020232"), id="short-hello"),  # decode_error
    pytest.param(bytes.fromhex("1603010008" "0200000401020304"), "UNEXPECTED_MESSAGE",
                 bytes.fromhex("1503030002020a"), id="not-a-hello"),  # unexpected_message
    pytest.param(bytes.fromhex("1703030005") + b"hello", "UNEXPECTED_MESSAGE",
                 bytes.fromhex("1503030002020a"), id="application-data"),
])
def test_bytes_that_are_no_client_hello_get_openssl_s_verdict(junk, reason, alert):
    """Even before the guest configured its server (it stops at the hello to
    do so): OpenSSL judges the bytes, and says what it says to them; to
    bytes that are not TLS at all, it says nothing. Never access_denied."""
    core = TlsCore(refuse, server_side=True, run_until=Point.CLIENT_HELLO)
    core.resume(Point.CLIENT_HELLO)
    core.receive_ciphertext(junk)
    with pytest.raises(TlsFailure) as info:
        core.handshake()
    assert info.value.reason == reason
    assert core.ciphertext_to_send() == alert


def test_the_operators_key_log_still_gets_every_secret(pki, version, tmp_path):
    """The host's key log callback stands in front of Python's: the key log
    file gets each secret, and an abort is still protected with them."""
    keylog = tmp_path / "keys.log"
    context = pki.policy(keylog_file=str(keylog)).server_context(
        [pki.identity("localhost")], client_auth=ClientAuth.IN_HANDSHAKE)
    aborted, finished = (python_client(pki, version, certificate=True) for _ in range(2))
    core = stopping_server(context)
    lockstep(aborted, core)
    core.abort()
    assert what_the_peer_reads(aborted, core.ciphertext_to_send()) == ACCESS_DENIED
    core = stopping_server(context)
    lockstep(finished, core)
    core.resume(Point.DONE)
    handshake_ok(finished, core)
    labels = [line.split()[0] for line in keylog.read_text().splitlines()
              if not line.startswith("#")]
    assert set(labels) == ({"CLIENT_RANDOM"} if version == "1.2" else {
        "SERVER_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "EXPORTER_SECRET", "SERVER_TRAFFIC_SECRET_0", "CLIENT_TRAFFIC_SECRET_0"})


def test_only_a_server_that_may_stop_for_the_client_certificate_pays_for_the_secrets(pki):
    """Every other handshake leaves the key log callback alone: it costs
    each handshake a Python call per secret, and only that stop needs them."""
    policy = pki.policy()
    plain = policy.server_context([pki.identity("localhost")])
    asking = policy.server_context([pki.identity("localhost")],
                                   client_auth=ClientAuth.IN_HANDSHAKE)
    for context, run_until in ((plain, Point.DONE), (asking, Point.CLIENT_CERTIFICATE)):
        core = TlsCore(context, server_side=True, run_until=run_until)
        lockstep(python_client(pki, "1.3"), core)
    client = TlsCore(pki.policy().client_context(), server_hostname="localhost")
    lockstep(client, PlainSSLPeer(asking_context(pki, "1.3"), server_side=True))
    assert LIBSSL.SSL_CTX_get_keylog_callback(openssl.context_pointer(plain)) is None
    assert LIBSSL.SSL_CTX_get_keylog_callback(openssl.context_pointer(
        client._obj.context)) is None
    assert LIBSSL.SSL_CTX_get_keylog_callback(openssl.context_pointer(asking)) is not None
