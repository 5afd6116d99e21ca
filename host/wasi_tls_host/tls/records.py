"""TLS record framing and a peek at plaintext handshake messages.

The core feeds OpenSSL one record at a time while a handshake may still have
to stop, and looks inside the records that are not encrypted yet to see which
handshake messages they carry before it hands them over. This module knows
only the wire format (RFC 8446 §5.1, RFC 5246 §6.2): no ``ssl``, no I/O.
"""

from __future__ import annotations

import enum

#: Record header: content type (1), legacy version (2), length (2).
HEADER_SIZE = 5
#: Handshake message header: type (1), length (3).
MESSAGE_HEADER_SIZE = 4
TLS_1_3 = 0x0304


class ContentType(enum.IntEnum):
    CHANGE_CIPHER_SPEC = 20
    ALERT = 21
    HANDSHAKE = 22
    APPLICATION_DATA = 23


class HandshakeType(enum.IntEnum):
    CLIENT_HELLO = 1
    SERVER_HELLO = 2
    NEW_SESSION_TICKET = 4
    ENCRYPTED_EXTENSIONS = 8
    CERTIFICATE = 11
    SERVER_KEY_EXCHANGE = 12
    CERTIFICATE_REQUEST = 13
    SERVER_HELLO_DONE = 14
    CERTIFICATE_VERIFY = 15
    CLIENT_KEY_EXCHANGE = 16
    FINISHED = 20
    KEY_UPDATE = 24


class AlertDescription(enum.IntEnum):
    """The alerts the host sends itself (``tls.alerts``)."""

    HANDSHAKE_FAILURE = 40
    ACCESS_DENIED = 49
    INTERNAL_ERROR = 80
    CERTIFICATE_REQUIRED = 116


def take_record(buffer: bytearray) -> bytes | None:
    """Remove and return the first complete record of `buffer`, or None while
    it holds less than one. The length is not checked here: OpenSSL judges
    the record and reports a malformed one with its own error."""
    if len(buffer) < HEADER_SIZE:
        return None
    end = HEADER_SIZE + int.from_bytes(buffer[3:5], "big")
    if len(buffer) < end:
        return None
    record = bytes(buffer[:end])
    del buffer[:end]
    return record


def certificate_list_is_empty(message: bytes, version: int) -> bool:
    """Whether a Certificate handshake message (header included) carries no
    certificate: a client's way of declining a request. TLS 1.3 puts a
    request context before the list (RFC 8446 §4.4.2, RFC 5246 §7.4.2)."""
    position = MESSAGE_HEADER_SIZE
    if version == TLS_1_3:
        if len(message) <= position:
            return False
        position += 1 + message[position]
    length = message[position:position + 3]
    return len(length) == 3 and int.from_bytes(length, "big") == 0


def alert_record(description: AlertDescription) -> bytes:
    """A fatal alert in a plaintext record (TLS 1.3 keeps the 1.2 record version)."""
    fatal = 2
    return bytes((ContentType.ALERT, 3, 3, 0, 2, fatal, description))


class HandshakeScanner:
    """Lists the handshake messages that start in each plaintext record.

    Handshake messages may span records, so the scanner remembers how much
    of the current message is still to come. It is fed only records the
    peer sends in the clear (before its ChangeCipherSpec in TLS 1.2; the
    ServerHello and ClientHello records in TLS 1.3).
    """

    def __init__(self) -> None:
        self._to_skip = 0
        self._partial_header = b""

    def message_types(self, record: bytes) -> list[int]:
        if record[0] != ContentType.HANDSHAKE:
            return []
        body = self._partial_header + record[HEADER_SIZE:]
        self._partial_header = b""
        types = []
        position = 0
        while position < len(body):
            if self._to_skip:
                step = min(self._to_skip, len(body) - position)
                self._to_skip -= step
                position += step
                continue
            if len(body) - position < 4:
                self._partial_header = body[position:]
                break
            types.append(body[position])
            self._to_skip = int.from_bytes(body[position + 1:position + 4], "big")
            position += 4
        return types
