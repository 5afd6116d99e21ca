"""A sans-IO parser for the ClientHello, read before any server SSLObject exists.

A TLS server has to choose its certificate and ALPN ids from what the client
offers, but OpenSSL only tells Python about the ClientHello from inside a
synchronous callback that cannot wait for a guest. The ClientHello travels in
the clear in TLS 1.2 and 1.3, so the host reads it from the first records
itself, lets the guest decide, and only then builds the server's context and
hands OpenSSL the same bytes.

`parse_client_hello` returns None while the message is incomplete ("need
more data" is a value) and raises `ClientHelloError` for bytes that are not
a ClientHello. Values are reported exactly as the client sent them, GREASE
included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from .records import HEADER_SIZE, ContentType, HandshakeType

#: A ClientHello larger than this is refused rather than buffered.
MAX_CLIENT_HELLO = 64 * 1024

_SERVER_NAME = 0
_SIGNATURE_ALGORITHMS = 13
_ALPN = 16
_SUPPORTED_VERSIONS = 43
_POST_HANDSHAKE_AUTH = 49
_HOST_NAME = 0


class ClientHelloError(Exception):
    """The peer's first bytes are not a well-formed TLS ClientHello."""


@dataclass(frozen=True)
class ClientHello:
    server_name: str | None
    alpn_ids: tuple[bytes, ...]
    cipher_suites: tuple[int, ...]
    signature_algorithms: tuple[int, ...]
    #: Protocol versions offered (supported_versions, else the legacy field).
    versions: tuple[int, ...]
    #: The client accepts certificate requests after the handshake (TLS 1.3).
    post_handshake_auth: bool


def parse_client_hello(data: bytes | bytearray) -> ClientHello | None:
    message = _handshake_message(data)
    if message is None:
        return None
    reader = _Reader(message)
    legacy_version = reader.u16()
    reader.take(32)  # random
    reader.vector(1)  # legacy session id
    suites = reader.vector(2)
    if len(suites) % 2:
        raise ClientHelloError("odd length of the cipher suite list")
    reader.vector(1)  # compression methods
    hello = ClientHello(server_name=None, alpn_ids=(), cipher_suites=_u16_list(suites),
                        signature_algorithms=(), versions=(legacy_version,),
                        post_handshake_auth=False)
    if reader.remaining():
        extensions = _Reader(reader.vector(2))
        while extensions.remaining():
            kind = extensions.u16()
            body = _Reader(extensions.vector(2))
            extension = _EXTENSIONS.get(kind)
            if extension is not None:
                hello = extension(body, hello)
    return hello


def _handshake_message(data: bytes | bytearray) -> bytes | None:
    """Reassemble the first handshake message from the records in `data`."""
    fragments = bytearray()
    position = 0
    while True:
        if len(fragments) >= 4:
            length = int.from_bytes(fragments[1:4], "big")
            if fragments[0] != HandshakeType.CLIENT_HELLO:
                raise ClientHelloError(f"expected a ClientHello, got handshake type {fragments[0]}")
            if length > MAX_CLIENT_HELLO:
                raise ClientHelloError(f"ClientHello of {length} bytes is too large")
            if len(fragments) >= 4 + length:
                return bytes(fragments[4:4 + length])
        if len(data) - position < HEADER_SIZE:
            return None
        kind, major = data[position], data[position + 1]
        if kind != ContentType.HANDSHAKE or major != 3:
            raise ClientHelloError("the first bytes are not a TLS handshake record")
        fragment_length = int.from_bytes(data[position + 3:position + 5], "big")
        if fragment_length == 0:
            # RFC 8446 §5.1 forbids them; skipping them would let a peer
            # fill the inbox without ever getting closer to a ClientHello.
            raise ClientHelloError("a zero-length handshake record")
        end = position + HEADER_SIZE + fragment_length
        if end > len(data):
            return None
        fragments += data[position + HEADER_SIZE:end]
        position = end


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.position = 0

    def remaining(self) -> int:
        return len(self.data) - self.position

    def take(self, n: int) -> bytes:
        if n > self.remaining():
            raise ClientHelloError("ClientHello ends in the middle of a field")
        chunk = self.data[self.position:self.position + n]
        self.position += n
        return chunk

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def vector(self, length_size: int) -> bytes:
        return self.take(int.from_bytes(self.take(length_size), "big"))


def _u16_list(data: bytes) -> tuple[int, ...]:
    return tuple(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data) - 1, 2))


def _server_name(body: _Reader, hello: ClientHello) -> ClientHello:
    names = _Reader(body.vector(2))
    while names.remaining():
        kind = names.take(1)[0]
        name = names.vector(2)
        if kind == _HOST_NAME:
            try:
                return replace(hello, server_name=name.decode("ascii"))
            except UnicodeDecodeError:
                raise ClientHelloError("the server name is not ASCII") from None
    return hello


def _alpn(body: _Reader, hello: ClientHello) -> ClientHello:
    ids = _Reader(body.vector(2))
    found = []
    while ids.remaining():
        found.append(ids.vector(1))
    return replace(hello, alpn_ids=tuple(found))


def _signature_algorithms(body: _Reader, hello: ClientHello) -> ClientHello:
    return replace(hello, signature_algorithms=_u16_list(body.vector(2)))


def _supported_versions(body: _Reader, hello: ClientHello) -> ClientHello:
    return replace(hello, versions=_u16_list(body.vector(1)))


def _post_handshake_auth(body: _Reader, hello: ClientHello) -> ClientHello:
    return replace(hello, post_handshake_auth=True)


#: The extensions read, each a step from the hello so far to the hello with it.
_EXTENSIONS: dict[int, Callable[[_Reader, ClientHello], ClientHello]] = {
    _SERVER_NAME: _server_name,
    _ALPN: _alpn,
    _SIGNATURE_ALGORITHMS: _signature_algorithms,
    _SUPPORTED_VERSIONS: _supported_versions,
    _POST_HANDSHAKE_AUTH: _post_handshake_auth,
}
