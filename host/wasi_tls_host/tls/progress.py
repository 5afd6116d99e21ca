"""How far a handshake has got, and where it may stop, for `tls.core`.

The full wasi:tls draft lets a guest stop a handshake at a few points
(`Point`) and resume it later. What reaches a point is a handshake message,
so the points are a table (`STOPS`) keyed by this side's role, whether the
message was read or written, its type and the protocol version; the core
reports every message OpenSSL reads or writes (``tls.openssl``) to
`Progress.observe`, and `Progress.note` looks each up once the OpenSSL call
that processed it has succeeded.

A point is reached once OpenSSL has *processed* the message (so a
certificate has been verified), with one exception: a TLS 1.2
CertificateRequest arrives in the clear, and a client that may stop there
has to stop *before* OpenSSL answers it, or it could no longer choose a
certificate. `Progress.admit` looks into each plaintext record before the
core feeds it, and holds back a record that carries such a message
(`STOP_BEFORE`).

Nothing here calls OpenSSL or does I/O.
"""

from __future__ import annotations

import enum

from .records import (
    TLS_1_3,
    ContentType,
    HandshakeScanner,
    HandshakeType,
    certificate_list_is_empty,
)


class Point(enum.IntEnum):
    """Where a handshake can stop, in the order a handshake passes them."""

    START = 0  #: nothing sent or read
    CLIENT_HELLO = 1  #: server: the ClientHello has been read
    SERVER_CERTIFICATE = 2  #: client: the server's chain has been received and verified
    CLIENT_IDENTITY_REQUEST = 3  #: client: the server asked for a certificate, or can no longer
    CLIENT_CERTIFICATE = 4  #: server: the client's certificate, or its absence, is verified
    DONE = 5


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


class Direction(enum.StrEnum):
    """As `tls.openssl` reports a message: this side read it or wrote it."""

    READ = "read"
    WRITE = "write"


#: The `STOPS` key's version for a row that holds in every version.
ANY_VERSION = None
#: Not a wire type: a Certificate message with no certificate in it, which
#: no CertificateVerify follows, so the server's stop comes at it.
EMPTY_CERTIFICATE = 0x100

_CLIENT, _SERVER, _READ = Role.CLIENT, Role.SERVER, Direction.READ

#: The points a handshake message reaches during the handshake, by (role,
#: direction, message type, version); a row for the exact version wins over
#: the one for any version.
STOPS: dict[tuple[Role, Direction, int, int | None], frozenset[Point]] = {
    (_CLIENT, _READ, HandshakeType.CERTIFICATE_REQUEST, ANY_VERSION):
        frozenset({Point.CLIENT_IDENTITY_REQUEST}),
    # OpenSSL verifies the chain as it processes the Certificate (a bad one
    # fails that very step). Stopping here, not after the 1.3
    # CertificateVerify, matters: once that is processed, OpenSSL no longer
    # takes a client certificate swapped in by the core's `use_context`.
    (_CLIENT, _READ, HandshakeType.CERTIFICATE, ANY_VERSION):
        frozenset({Point.SERVER_CERTIFICATE}),
    # A 1.3 CertificateRequest comes before the certificate or not at all.
    (_CLIENT, _READ, HandshakeType.CERTIFICATE, TLS_1_3):
        frozenset({Point.SERVER_CERTIFICATE, Point.CLIENT_IDENTITY_REQUEST}),
    (_CLIENT, _READ, HandshakeType.SERVER_HELLO_DONE, ANY_VERSION):
        frozenset({Point.CLIENT_IDENTITY_REQUEST}),
    (_CLIENT, _READ, HandshakeType.FINISHED, ANY_VERSION):
        frozenset({Point.CLIENT_IDENTITY_REQUEST}),
    (_SERVER, _READ, EMPTY_CERTIFICATE, ANY_VERSION): frozenset({Point.CLIENT_CERTIFICATE}),
    (_SERVER, _READ, HandshakeType.CERTIFICATE_VERIFY, ANY_VERSION):
        frozenset({Point.CLIENT_CERTIFICATE}),
    (_SERVER, _READ, HandshakeType.FINISHED, ANY_VERSION): frozenset({Point.CLIENT_CERTIFICATE}),
}

#: Plaintext messages a side stops *before* when the point they reach is
#: the limit: what it would do with them must still be open to change.
STOP_BEFORE: dict[tuple[Role, int], Point] = {
    (_CLIENT, HandshakeType.CERTIFICATE_REQUEST): Point.CLIENT_IDENTITY_REQUEST,
}


class Progress:
    """One handshake's progress: the limit it may run to, the points it has
    reached, a record held back at a stop, whether the server asked this
    client for a certificate, and the Certificate message this side sent."""

    def __init__(self, role: Role, limit: Point) -> None:
        self.role = role
        self.limit = limit
        self._reached = {Point.START}
        self.done = False  #: the handshake is complete (read on every operation: a plain attribute)
        #: OpenSSL completed its handshake (the core may still hold it at a stop).
        self.openssl_finished = False
        self.held_record: bytes | None = None
        #: Client: the server sent a CertificateRequest in the handshake.
        self.certificate_requested = False
        #: The Certificate handshake message this side sent, if any.
        self.own_certificate: bytes | None = None
        #: Server: a post-handshake certificate request awaits the client's answer.
        self.post_handshake_request = False
        #: The peer's KeyUpdate asked for ours, which OpenSSL has not written yet.
        self.key_update_requested = False
        self._stop_before = {message: point for (role, message), point in STOP_BEFORE.items()
                             if role is self.role}
        self._scanner = HandshakeScanner()
        self._peer_encrypts = False  # the peer sent ChangeCipherSpec (TLS 1.2)
        self._observed: list[tuple[str, int, int, bytes]] = []

    def observe(self, direction: str, version: int, message_type: int, message: bytes) -> None:
        """The `tls.openssl` observer: keeps what one OpenSSL call reports
        until the call's outcome says whether it counts (`commit`, `discard`)."""
        self._observed.append((direction, version, message_type, message))

    def commit(self) -> None:
        if self._observed:  # most calls, every read of application data, report none
            observed, self._observed = self._observed, []
            for message in observed:
                self.note(*message)

    def discard(self) -> None:
        """Forget what a failed call reported: it reached nothing."""
        self._observed.clear()

    def reached(self, point: Point) -> bool:
        """Whether `point` is behind (TLS 1.3 does not pass them in order:
        its CertificateRequest comes before the certificate)."""
        return self.done or point in self._reached

    def reach(self, point: Point) -> None:
        self._reached.add(point)

    def allow(self, until: Point) -> bool:
        """Let the handshake run on to `until`; False if it already may (it never goes back)."""
        if until <= self.limit:
            return False
        self.limit = until
        return True

    def at_limit(self) -> bool:
        return self.limit < Point.DONE and self.limit in self._reached

    def finish(self) -> bytes | None:
        """Mark the handshake complete; returns the record held at a stop, if any."""
        self._reached.add(Point.DONE)
        self.done = True
        return self.take_held()

    def note(self, direction: str, version: int, message_type: int, message: bytes) -> None:
        """Learn from one handshake message OpenSSL processed."""
        if direction == Direction.WRITE:
            if message_type == HandshakeType.CERTIFICATE:
                self.own_certificate = message
            return
        if self.done:
            # Post-handshake: a client answers a request with the identity it
            # has; a server's request is answered once the client's Finished
            # is in; a KeyUpdate's last byte says whether it wants ours.
            if self.role is Role.SERVER and message_type == HandshakeType.FINISHED:
                self.post_handshake_request = False
            elif message_type == HandshakeType.KEY_UPDATE and message[-1:] == b"\x01":
                self.key_update_requested = True
            return
        if message_type == HandshakeType.CERTIFICATE_REQUEST and self.role is Role.CLIENT:
            self.certificate_requested = True
        if (message_type == HandshakeType.CERTIFICATE
                and certificate_list_is_empty(message, version)):
            message_type = EMPTY_CERTIFICATE
        points = STOPS.get((self.role, Direction.READ, message_type, version))
        if points is None:
            points = STOPS.get((self.role, Direction.READ, message_type, ANY_VERSION), frozenset())
        self._reached |= points

    def admit(self, record: bytes) -> bool:
        """Whether the peer's `record` may go to OpenSSL now. False: it carries
        a message to stop before (see `STOP_BEFORE`); it is kept in
        `held_record` until the handshake may go on."""
        if record[0] == ContentType.CHANGE_CIPHER_SPEC:
            self._peer_encrypts = True
        if not self._stop_before or self._peer_encrypts:
            return True
        for message_type in self._scanner.message_types(record):
            if self._stop_before.get(message_type) == self.limit:
                self.held_record = record
                self.note(Direction.READ, 0, message_type, b"")
                return False
        return True

    def take_held(self) -> bytes | None:
        held, self.held_record = self.held_record, None
        return held
