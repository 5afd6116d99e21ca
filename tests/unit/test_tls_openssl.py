"""The private corners of Python's `ssl` that `wasi_tls_host.tls.openssl`
wraps, checked on the running Python: if a CPython release moves them, these
fail before anything subtler does (the message callback slot, the record
headers it reports, the SSL_CTX pointer, the key log callback chained in
front of Python's, the unverified chain). Both TLS versions, real OpenSSL on
both ends of an in-memory pair."""

from __future__ import annotations

import gc
import ssl
import weakref

from lockstep import LIBSSL, PlainSSLPeer, handshake_ok, ssl_pointer
from pki import Pki, der_chain

from wasi_tls_host.tls import openssl
from wasi_tls_host.tls.records import HandshakeType, take_record

CLIENT_HELLO, SERVER_HELLO = HandshakeType.CLIENT_HELLO, HandshakeType.SERVER_HELLO


class Recorder:
    def __init__(self) -> None:
        self.messages: list[tuple[str, int, int, bytes]] = []
        self.records: list[int] = []
        self.secrets: list[tuple[str, bytes, bytes]] = []

    def observe(self, direction: str, version: int, message_type: int, data: bytes) -> None:
        self.messages.append((direction, version, message_type, data))

    def record(self, content_type: int) -> None:
        self.records.append(content_type)

    def secret(self, label: str, secret: bytes, randoms: bytes) -> None:
        self.secrets.append((label, secret, randoms))


def pair(pki: Pki, version: str, leaf) -> tuple[PlainSSLPeer, PlainSSLPeer]:
    client_context = pki.client_context(version)
    openssl.observe_handshake_messages(client_context)
    openssl.observe_handshake_messages(client_context)  # idempotent
    client = PlainSSLPeer(client_context, server_side=False, server_hostname="localhost")
    server = PlainSSLPeer(pki.server_context(leaf, version), server_side=True)
    return client, server


def test_observer_sees_each_handshake_message(pki, version):
    client, server = pair(pki, version, pki.leaf("localhost"))
    recorder = Recorder()
    openssl.attach_observer(client.obj, recorder.observe)
    handshake_ok(client, server)
    written = [message for message in recorder.messages if message[0] == "write"]
    read = [message for message in recorder.messages if message[0] == "read"]
    assert written[0][2] == CLIENT_HELLO and read[0][2] == SERVER_HELLO
    assert read[0][3][0] == SERVER_HELLO  # the message itself, type byte first
    assert {message[2] for message in read} >= {HandshakeType.CERTIFICATE,
                                                HandshakeType.FINISHED}
    # The dispatcher sits in _ssl's own slot: no ssl.py wrapper turns every
    # number of every message into an enum on the way.
    assert ssl._ssl._SSLContext._msg_callback.__get__(client.obj.context) is openssl._dispatch


def test_connections_without_an_observer_are_left_alone(pki, version):
    leaf = pki.leaf("localhost")
    observed, server = pair(pki, version, leaf)
    recorder = Recorder()
    openssl.attach_observer(observed.obj, recorder.observe)
    other, other_server = pair(pki, version, leaf)
    handshake_ok(other, other_server)  # same kind of context, no observer
    assert recorder.messages == []
    handshake_ok(observed, server)
    assert recorder.messages


def fully_observed_pair(pki: Pki, version: str) -> tuple[PlainSSLPeer, PlainSSLPeer, Recorder]:
    """A pair whose client reports its messages, records and secrets to a Recorder."""
    client, server = pair(pki, version, pki.leaf("localhost"))
    assert openssl.observe_secrets(client.obj.context)
    recorder = Recorder()
    openssl.attach_observer(client.obj, recorder.observe, records=recorder.record,
                            secrets=recorder.secret)
    return client, server, recorder


def test_observers_go_with_their_connection(pki, version):
    # The connection keeps its observers and nothing else does: once it is
    # dropped they are freed at once (no registry holds them, no cycle).
    client, server, recorder = fully_observed_pair(pki, version)
    handshake_ok(client, server)
    assert recorder.messages and recorder.records and recorder.secrets
    gone = weakref.ref(recorder)
    del recorder
    assert gone() is not None  # the connection still holds its observers
    gc.disable()
    try:
        del client
        assert gone() is None
    finally:
        gc.enable()


def test_unverified_chain_is_the_peers_chain_as_sent(pki, version):
    leaf = pki.leaf("localhost")
    client, server = pair(pki, version, leaf)
    assert openssl.unverified_chain(client.obj) == ()
    handshake_ok(client, server)
    assert openssl.unverified_chain(client.obj) == der_chain(leaf)
    assert openssl.unverified_chain(server.obj) == ()  # no client certificate


VERSION_CODES = {"1.2": 0x0303, "1.3": 0x0304}


def content_types(data: bytes) -> list[int]:
    buffer, types = bytearray(data), []
    while (record := take_record(buffer)) is not None:
        types.append(record[0])
    return types


def test_record_headers_report_each_record_written(pki, version):
    client, server = pair(pki, version, pki.leaf("localhost"))
    recorder = Recorder()
    openssl.attach_observer(client.obj, recorder.observe, records=recorder.record)
    sent = bytearray()
    for _ in range(4):
        if client.handshake() and server.handshake():
            break
        sent += (out := client.ciphertext_to_send())
        server.receive_ciphertext(out)
        server.handshake()
        client.receive_ciphertext(server.ciphertext_to_send())
    assert recorder.records == content_types(bytes(sent))  # outer types, in order


def test_the_context_pointer_is_the_ssl_ctx_of_its_connections(pki, version):
    client, server = pair(pki, version, pki.leaf("localhost"))
    handshake_ok(client, server)
    pointer = openssl.context_pointer(client.obj.context)
    assert pointer is not None
    assert pointer == LIBSSL.SSL_get_SSL_CTX(ssl_pointer(client, VERSION_CODES[version]))


def test_secrets_reach_the_observer_and_the_key_log_file_once(pki, version, tmp_path):
    keylog = tmp_path / "keys.log"
    context = pki.client_context(version)
    context.keylog_filename = str(keylog)  # Python's callback, before ours
    openssl.observe_handshake_messages(context)
    assert openssl.observe_secrets(context) and openssl.observe_secrets(context)  # idempotent
    client = PlainSSLPeer(context, server_side=False, server_hostname="localhost")
    server = PlainSSLPeer(pki.server_context(pki.leaf("localhost"), version), server_side=True)
    recorder = Recorder()
    openssl.attach_observer(client.obj, recorder.observe, secrets=recorder.secret)
    handshake_ok(client, server)
    logged = [line.split() for line in keylog.read_text().splitlines()
              if not line.startswith("#")]
    assert [(label, bytes.fromhex(secret)) for label, _, secret in logged
            if label != "EXPORTER_SECRET"] == [
        (label, secret) for label, secret, _ in recorder.secrets]  # no exporter: no use
    assert {label for label, _, _ in logged} == (
        {"CLIENT_RANDOM"} if version == "1.2" else
        {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
         "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0", "EXPORTER_SECRET"})
    hello = next(data for direction, _, kind, data in recorder.messages
                 if direction == "write" and kind == HandshakeType.CLIENT_HELLO)
    for label, _, randoms in recorder.secrets:
        if label == "CLIENT_RANDOM":  # TLS 1.2: both randoms, the client's from its hello
            assert randoms[:32] == hello[6:38] and randoms[32:] != bytes(32)
            assert len(randoms) == 64
        else:
            assert randoms == b""


def test_a_context_without_a_key_log_file_still_reports_secrets(pki, version):
    client, server = pair(pki, version, pki.leaf("localhost"))
    assert client.obj.context.keylog_filename is None
    assert openssl.observe_secrets(client.obj.context)
    recorder = Recorder()
    openssl.attach_observer(client.obj, recorder.observe, secrets=recorder.secret)
    handshake_ok(client, server)
    assert recorder.secrets


def test_stopping_the_handshake_reports_keeps_only_the_messages(pki, version):
    client, server, recorder = fully_observed_pair(pki, version)
    openssl.stop_handshake_reports(client.obj)
    handshake_ok(client, server)
    assert recorder.messages  # still observed
    assert recorder.records == [] and recorder.secrets == []
