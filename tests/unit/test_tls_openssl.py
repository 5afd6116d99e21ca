"""The private corners of Python's `ssl` that `wasi_tls_host.tls.openssl`
wraps, checked on the running Python: if a CPython release moves them, these
fail before anything subtler does. Both TLS versions, real OpenSSL on both
ends of an in-memory pair."""

from __future__ import annotations

import gc
import ssl

import pytest
from pki import TLS_VERSIONS, Pki, der_chain

from wasi_tls_host.tls import openssl
from wasi_tls_host.tls.records import HandshakeType

CLIENT_HELLO, SERVER_HELLO = HandshakeType.CLIENT_HELLO, HandshakeType.SERVER_HELLO


@pytest.fixture(params=sorted(TLS_VERSIONS))
def version(request) -> str:
    return request.param


class Recorder:
    def __init__(self) -> None:
        self.messages: list[tuple[str, int, int, bytes]] = []

    def observe(self, direction: str, version: int, message_type: int, data: bytes) -> None:
        self.messages.append((direction, version, message_type, data))


def handshake(client: ssl.SSLObject, server: ssl.SSLObject, bios) -> None:
    client_in, client_out, server_in, server_out = bios
    done = {client: False, server: False}
    for _ in range(20):
        for side in (client, server):
            if not done[side]:
                try:
                    side.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
            server_in.write(client_out.read())
            client_in.write(server_out.read())
        if all(done.values()):
            return
    raise AssertionError("the in-memory handshake did not finish")


def pair(pki: Pki, version: str, leaf):
    bios = tuple(ssl.MemoryBIO() for _ in range(4))
    client_context = pki.client_context(version)
    openssl.observe_handshake_messages(client_context)
    openssl.observe_handshake_messages(client_context)  # idempotent
    client = client_context.wrap_bio(bios[0], bios[1], server_hostname="localhost")
    server = pki.server_context(leaf, version).wrap_bio(bios[2], bios[3], server_side=True)
    return client, server, bios


def test_observer_sees_each_handshake_message(pki, version):
    client, server, bios = pair(pki, version, pki.leaf("localhost"))
    recorder = Recorder()
    openssl.attach_observer(client, recorder.observe)
    handshake(client, server, bios)
    written = [message for message in recorder.messages if message[0] == "write"]
    read = [message for message in recorder.messages if message[0] == "read"]
    assert written[0][2] == CLIENT_HELLO and read[0][2] == SERVER_HELLO
    assert read[0][3][0] == SERVER_HELLO  # the message itself, type byte first
    assert {message[2] for message in read} >= {HandshakeType.CERTIFICATE,
                                                HandshakeType.FINISHED}
    # The dispatcher sits in _ssl's own slot: no ssl.py wrapper turns every
    # number of every message into an enum on the way.
    assert ssl._ssl._SSLContext._msg_callback.__get__(client.context) is openssl._dispatch


def test_connections_without_an_observer_are_left_alone(pki, version):
    leaf = pki.leaf("localhost")
    observed, server, bios = pair(pki, version, leaf)
    recorder = Recorder()
    openssl.attach_observer(observed, recorder.observe)
    other, other_server, other_bios = pair(pki, version, leaf)
    handshake(other, other_server, other_bios)  # same kind of context, no observer
    assert recorder.messages == []
    handshake(observed, server, bios)
    assert recorder.messages


def test_observer_is_held_weakly(pki, version):
    client, server, bios = pair(pki, version, pki.leaf("localhost"))
    recorder = Recorder()
    openssl.attach_observer(client, recorder.observe)
    del recorder
    gc.collect()
    handshake(client, server, bios)  # the dispatcher finds a dead reference: ignored
    assert client.version() == {"1.2": "TLSv1.2", "1.3": "TLSv1.3"}[version]


def test_unverified_chain_is_the_peers_chain_as_sent(pki, version):
    leaf = pki.leaf("localhost")
    client, server, bios = pair(pki, version, leaf)
    assert openssl.unverified_chain(client) == ()
    handshake(client, server, bios)
    assert openssl.unverified_chain(client) == der_chain(leaf)
    assert openssl.unverified_chain(server) == ()  # no client certificate
