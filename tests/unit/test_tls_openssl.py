"""The private corners of Python's `ssl` that `wasi_tls_host.tls.openssl`
wraps, checked on the running Python: if a CPython release moves them, these
fail before anything subtler does. Both TLS versions, real OpenSSL on both
ends of an in-memory pair."""

from __future__ import annotations

import gc
import ssl

from lockstep import PlainSSLPeer, handshake_ok
from pki import Pki, der_chain

from wasi_tls_host.tls import openssl
from wasi_tls_host.tls.records import HandshakeType

CLIENT_HELLO, SERVER_HELLO = HandshakeType.CLIENT_HELLO, HandshakeType.SERVER_HELLO


class Recorder:
    def __init__(self) -> None:
        self.messages: list[tuple[str, int, int, bytes]] = []

    def observe(self, direction: str, version: int, message_type: int, data: bytes) -> None:
        self.messages.append((direction, version, message_type, data))


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


def test_observer_is_held_weakly(pki, version):
    client, server = pair(pki, version, pki.leaf("localhost"))
    recorder = Recorder()
    openssl.attach_observer(client.obj, recorder.observe)
    del recorder
    gc.collect()
    handshake_ok(client, server)  # the dispatcher finds a dead reference: ignored
    assert client.obj.version() == f"TLSv{version}"


def test_unverified_chain_is_the_peers_chain_as_sent(pki, version):
    leaf = pki.leaf("localhost")
    client, server = pair(pki, version, leaf)
    assert openssl.unverified_chain(client.obj) == ()
    handshake_ok(client, server)
    assert openssl.unverified_chain(client.obj) == der_chain(leaf)
    assert openssl.unverified_chain(server.obj) == ()  # no client certificate
