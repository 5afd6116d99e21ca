"""Sans-IO TLS connection, client or server, on top of ``ssl.SSLObject``.

Theory of operation
-------------------
The host speaks TLS for a WebAssembly guest over a pair of WASI streams the
host implements itself. ``ssl.SSLSocket`` wants to own a real socket and
block on it, which does not fit, so this module does no I/O at all. It wraps
an ``ssl.SSLObject`` whose two ends are ``ssl.MemoryBIO`` buffers:

    transport bytes --receive_ciphertext()--> [inbox] --> [incoming BIO] --> OpenSSL
    OpenSSL --> [outgoing BIO] --ciphertext_to_send()--> transport bytes

The caller (the WASI glue) moves bytes between these buffers and the network
and decides *when*; this class decides *what* the bytes mean. The role
(client or server) matters only where the protocol differs: who speaks
first, which stop points exist, who reads the ClientHello.

Suspension
~~~~~~~~~~
The full wasi:tls draft lets a guest stop the handshake at points of
interest (`Point`) and resume it later, with no bytes moving while it waits.
The core runs the handshake only up to ``resume(until=...)``. Until the
handshake is done it holds the peer's ciphertext in an inbox and gives
OpenSSL one record at a time, so after each record it can tell, from the
handshake messages OpenSSL reports (``tls.openssl``), whether a point has
been passed. When one has, it stops feeding and holds whatever OpenSSL
queued to send: ``ciphertext_to_send()`` returns nothing and
``wants_ciphertext()`` is False until the caller resumes. A server's
handshake begins before any ``SSLObject`` exists: the ClientHello is parsed
from the inbox (``tls.client_hello``) so that the context, with its
certificates and ALPN ids, can be chosen from it; OpenSSL then gets the same
bytes. A TLS 1.2 CertificateRequest is plaintext, so a client that waits for
one looks into each record before feeding it and stops *before* the record
that carries it; that is what lets the guest still choose a certificate.

State
~~~~~
`CoreState` and `TRANSITIONS` below are the whole life cycle, as data;
`_transition` is the one place the state changes. Failures are sticky: the
first fatal error moves the connection to BROKEN and every later operation
raises that same `TlsFailure` (OpenSSL's own answers after a fatal error are
unhelpful, so it is never asked twice); an alert OpenSSL queued while
failing is still handed out for the transport. A server's outstanding
post-handshake certificate request (TLS 1.3) runs beside the life cycle in
``post_handshake_request``.

Habits borrowed from h11 and trio's ssl wrapper: "need more data" is a value
(``False`` from `handshake`, ``None`` from `read`), never an exception; reads
and writes before the handshake completes drive or wait for it;
``SSLObject.write`` is never given empty data, and plaintext OpenSSL could
not take yet is retried by the one pump `_push_plaintext`; close_notify is
queued at most once, after draining the incoming BIO (``unwrap`` runs
``SSL_shutdown`` twice and fails if application data is waiting); an empty
``SSLObject.read`` is end of stream; a transport EOF without close_notify is
reported once as truncation.

Nothing in this module imports wasmtime.
"""

from __future__ import annotations

import enum
import functools
import ssl
import sys
from collections.abc import Callable

from . import openssl
from .client_hello import ClientHello, ClientHelloError, parse_client_hello
from .errors import (
    MSG_CLOSED_FOR_WRITING,
    MSG_EOF_IN_HANDSHAKE,
    ErrorKind,
    TlsFailure,
    translate,
    without_source_line,
)
from .records import (
    AlertDescription,
    ContentType,
    HandshakeScanner,
    HandshakeType,
    alert_record,
    take_record,
)

__all__ = ["TlsCore", "TlsFailure", "CoreState", "Point", "ErrorKind", "TRANSITIONS"]

TLS_1_3 = 0x0304


class CoreState(enum.StrEnum):
    """Life cycle of a `TlsCore`; members compare equal to their values."""

    SUSPENDED = "suspended"  #: the handshake waits for `resume` (see `suspended_at`)
    AWAITING_CLIENT_HELLO = "awaiting-client-hello"  #: server, reading the ClientHello
    HANDSHAKING = "handshaking"
    OPEN = "open"
    WRITE_CLOSED = "write-closed"  #: our close_notify is queued; reading goes on
    READ_CLOSED = "read-closed"  #: the peer's stream ended; writing goes on
    CLOSED = "closed"  #: both directions are over (or closed before the handshake ended)
    BROKEN = "broken"  #: a fatal error happened; every operation re-raises it


class Event(enum.StrEnum):
    RESUME = "resume"  #: the caller lets the handshake run further
    AWAIT_HELLO = "await-hello"  #: a server resumed before the ClientHello arrived
    STOP = "stop"  #: the handshake reached the point it may run to
    FINISH = "finish"  #: the handshake completed
    CLOSE = "close"  #: this side ends its sending (close_notify once established)
    PEER_CLOSE = "peer-close"  #: the peer's stream ended
    FAIL = "fail"  #: allowed from every state but BROKEN


TRANSITIONS: dict[CoreState, dict[Event, CoreState]] = {
    CoreState.SUSPENDED: {Event.RESUME: CoreState.HANDSHAKING,
                         Event.AWAIT_HELLO: CoreState.AWAITING_CLIENT_HELLO,
                         Event.CLOSE: CoreState.CLOSED},
    CoreState.AWAITING_CLIENT_HELLO: {Event.STOP: CoreState.SUSPENDED,
                                     Event.RESUME: CoreState.HANDSHAKING,
                                     Event.CLOSE: CoreState.CLOSED},
    CoreState.HANDSHAKING: {Event.STOP: CoreState.SUSPENDED, Event.FINISH: CoreState.OPEN,
                           Event.CLOSE: CoreState.CLOSED},
    CoreState.OPEN: {Event.CLOSE: CoreState.WRITE_CLOSED, Event.PEER_CLOSE: CoreState.READ_CLOSED},
    CoreState.WRITE_CLOSED: {Event.PEER_CLOSE: CoreState.CLOSED},
    CoreState.READ_CLOSED: {Event.CLOSE: CoreState.CLOSED},
    CoreState.CLOSED: {},
    CoreState.BROKEN: {},
}

#: States in which the peer's bytes are still consumed.
_RECEIVING = frozenset({CoreState.AWAITING_CLIENT_HELLO, CoreState.HANDSHAKING, CoreState.OPEN,
                        CoreState.WRITE_CLOSED})
_SENDING_CLOSED = frozenset({CoreState.WRITE_CLOSED, CoreState.CLOSED})


class Point(enum.IntEnum):
    """Where a handshake can stop, in the order a handshake passes them."""

    START = 0  #: nothing sent or read
    CLIENT_HELLO = 1  #: server: the ClientHello has been read
    SERVER_CERTIFICATE = 2  #: client: the server's chain has been received and verified
    CLIENT_IDENTITY_REQUEST = 3  #: client: the server asked for a certificate, or can no longer
    CLIENT_CERTIFICATE = 4  #: server: the client's certificate, or its absence, is verified
    DONE = 5


#: Builds the context once a server knows the ClientHello (None if unreadable).
ContextFactory = Callable[[ClientHello | None], ssl.SSLContext]


class TlsCore:
    """One TLS session, client or server, driven entirely by the caller.

    Transport side: feed bytes from the network with `receive_ciphertext` /
    `receive_eof`, and send whatever `ciphertext_to_send` returns after
    *every* call (it may be ``b""``).

    Application side: `handshake` until it returns ``True`` (with `resume` to
    let a suspended handshake go on), then `read` / `write`, and `close` to
    send close_notify.

    ``context`` is an ``ssl.SSLContext``, or for a server a `ContextFactory`.
    ``run_until`` is how far the handshake may go before the first `resume`:
    `Point.DONE` runs it straight through, `Point.START` keeps it suspended
    until asked.
    """

    #: Plaintext requested from OpenSSL per call: one full record.
    _CHUNK = 16384

    def __init__(self, context: ssl.SSLContext | ContextFactory, *, server_side: bool = False,
                 server_hostname: str | None = None, suppress_ragged_eofs: bool = False,
                 run_until: Point = Point.DONE) -> None:
        if not server_side:
            check_server_name(server_hostname)
        self._context = context
        self._server_side = server_side
        self._server_hostname = server_hostname
        self._suppress_ragged_eofs = suppress_ragged_eofs
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._obj: ssl.SSLObject | None = None

        self._limit = run_until
        self._reached: set[Point] = {Point.START}
        if run_until == Point.START:
            self._state = CoreState.SUSPENDED
        else:
            self._state = (CoreState.AWAITING_CLIENT_HELLO if server_side
                           else CoreState.HANDSHAKING)
        self._error: TlsFailure | None = None
        self._established = False  # the handshake completed (the state may have moved on)
        self._openssl_done = False  # OpenSSL finished, perhaps while held at a stop

        self._inbox = bytearray()  # the peer's bytes not yet given to OpenSSL
        self._held_record: bytes | None = None  # a record kept back at a stop
        self._scanner = HandshakeScanner()
        self._peer_encrypts = False  # the peer sent ChangeCipherSpec (TLS 1.2)
        self._transport_eof = False
        self._eof_fed = False
        self._blocked_on_input = False

        self._client_hello: ClientHello | None = None
        self._messages: list[tuple[str, int, int, bytes]] = []
        self._certificate_requested = False
        self._own_certificate: bytes | None = None  # the Certificate message OpenSSL wrote
        self.post_handshake_request = False

        self._rx = bytearray()  # decrypted plaintext not yet returned by read()
        self._rx_eof = False
        self._rx_error: TlsFailure | None = None  # raised once _rx is drained
        self._tx = bytearray()  # plaintext accepted by write() but not yet encrypted
        self._close_notify_sent = False
        self._ssl_dead = False  # OpenSSL hit a fatal condition (a ragged EOF)
        self._alert = b""  # an alert of our own, sent when abandoning a handshake

    # ------------------------------------------------------------------
    # state
    @property
    def state(self) -> CoreState:
        return self._state

    @property
    def error(self) -> TlsFailure | None:
        """The sticky error of a broken connection, else ``None``."""
        return self._error

    @property
    def server_side(self) -> bool:
        return self._server_side

    @property
    def server_hostname(self) -> str | None:
        return self._server_hostname

    @property
    def handshake_complete(self) -> bool:
        return self._established

    @property
    def suspended_at(self) -> Point | None:
        return self._limit if self._state is CoreState.SUSPENDED else None

    def reached(self, point: Point) -> bool:
        """Whether the handshake has got to `point` (TLS 1.3 does not pass
        them in order: its CertificateRequest comes before the certificate)."""
        return self._established or point in self._reached

    @property
    def started(self) -> bool:
        """Whether the context has been chosen (the SSLObject exists)."""
        return self._obj is not None

    @property
    def peer_closed(self) -> bool:
        """True once the plaintext stream from the peer has ended (any way)."""
        return self._rx_eof

    @property
    def close_notify_sent(self) -> bool:
        return self._close_notify_sent

    @property
    def client_hello(self) -> ClientHello | None:
        return self._client_hello

    @property
    def certificate_requested(self) -> bool:
        """Client: the server sent a CertificateRequest in the handshake."""
        return self._certificate_requested

    @property
    def identity_committed(self) -> bool:
        """Client: OpenSSL has already written the Certificate message it answers with."""
        return self._own_certificate is not None

    @property
    def own_certificate_message(self) -> bytes | None:
        """The Certificate handshake message this side sent, if any."""
        return self._own_certificate

    def _transition(self, event: Event) -> None:
        """The one place the state changes."""
        if event is Event.FAIL:
            self._state = CoreState.BROKEN
            return
        self._state = TRANSITIONS[self._state][event]

    def _fail(self, error: TlsFailure) -> None:
        """Enter the broken state with ``error`` and raise it."""
        if self._error is None:
            self._error = error
            self._transition(Event.FAIL)
            self._rx.clear()
            self._tx.clear()
            self._blocked_on_input = False
        raise self._error

    def _raise_if_broken(self) -> None:
        if self._error is not None:
            # The same object every time; drop the old traceback so repeated
            # raises do not keep growing it.
            raise self._error.with_traceback(None)

    def _translate(self, exc: ssl.SSLError, *, during_handshake: bool) -> TlsFailure:
        return translate(exc, during_handshake=during_handshake, server_side=self._server_side,
                         server_hostname=self._server_hostname)

    # ------------------------------------------------------------------
    # transport side
    def receive_ciphertext(self, data: bytes) -> None:
        """Hand bytes read from the transport to TLS. Empty data is ignored."""
        self._raise_if_broken()
        if not data:
            return
        if self._transport_eof:
            raise ValueError("receive_ciphertext() called after receive_eof()")
        if self._established:
            self._incoming.write(data)
        else:
            self._inbox += data
        self._blocked_on_input = False

    def receive_eof(self) -> None:
        """Tell TLS that the transport reached end of file. Idempotent."""
        if self._transport_eof:
            return
        self._transport_eof = True
        self._blocked_on_input = False
        if self._established:
            self._feed_eof()

    def _feed_eof(self) -> None:
        if not self._eof_fed:
            self._eof_fed = True
            self._incoming.write_eof()

    def _give_inbox(self) -> None:
        """Hand OpenSSL every byte received and not yet given to it."""
        self._incoming.write(self._inbox)
        self._inbox.clear()

    def ciphertext_to_send(self) -> bytes:
        """Return (and forget) every byte waiting to go to the transport.

        Nothing while the handshake is suspended. Never raises; a connection
        that just broke still yields the alert queued while failing.
        """
        if self._state is CoreState.SUSPENDED:
            return b""
        if self._tx and self._established and self._error is None:
            try:
                self._push_plaintext()
            except TlsFailure:
                pass  # recorded as the sticky error; raised by the next operation
        if self._alert:
            alert, self._alert = self._alert, b""
            return alert
        return self._outgoing.read()

    def ciphertext_pending(self) -> int:
        """Number of bytes `ciphertext_to_send` would return now."""
        if self._state is CoreState.SUSPENDED:
            return 0
        return len(self._alert) + self._outgoing.pending

    def wants_ciphertext(self) -> bool:
        """True when the last attempt to make progress stopped for lack of the
        peer's bytes (never while suspended, never with plaintext unread).

        It becomes False again as soon as new ciphertext (or EOF) arrives, so
        the caller should retry the operation and ask again.
        """
        return self._blocked_on_input and not self._rx and self._state in _RECEIVING

    # ------------------------------------------------------------------
    # handshake
    def resume(self, until: Point) -> None:
        """Let the handshake run up to `until` (it never goes back). A broken
        connection stays broken: the next operation reports why."""
        if self._error is not None or until <= self._limit:
            return
        self._limit = until
        self._blocked_on_input = False  # a record held at the stop may now go in
        if self._state is CoreState.SUSPENDED:
            waiting = self._server_side and self._client_hello is None
            self._transition(Event.AWAIT_HELLO if waiting else Event.RESUME)

    def handshake(self) -> bool:
        """Drive the handshake as far as it may go.

        Returns ``True`` once it is complete (and on every later call),
        ``False`` when it needs more ciphertext from the peer or is
        suspended (see `suspended_at`). Raises `TlsFailure` on failure.
        """
        self._raise_if_broken()
        if self._established:
            return True
        state = self._state
        if state is CoreState.CLOSED:
            raise TlsFailure("connection closed before the handshake completed",
                           kind=ErrorKind.CLOSED)
        if state is CoreState.SUSPENDED:
            return False
        if self._blocked_on_input:
            # Nothing has arrived since OpenSSL last asked for more: another
            # step would only fail the same way (the pump asks on every poll).
            return False
        if state is CoreState.AWAITING_CLIENT_HELLO and not self._read_client_hello():
            return False
        return self._drive()

    def _read_client_hello(self) -> bool:
        """Server: parse the ClientHello from the inbox; True once the handshake may go on."""
        try:
            hello = parse_client_hello(self._inbox)
        except ClientHelloError:
            # Not a ClientHello we can read: OpenSSL judges the bytes, all of
            # them (no stop here), so the peer gets OpenSSL's alert and the
            # error its precise reason.
            self._give_inbox()
            self._transition(Event.RESUME)
            return True
        if hello is None:
            if self._transport_eof:
                self._fail(TlsFailure(MSG_EOF_IN_HANDSHAKE, kind=ErrorKind.EOF))
            self._blocked_on_input = True
            return False
        self._client_hello = hello
        self._reached.add(Point.CLIENT_HELLO)
        if self._limit == Point.CLIENT_HELLO:
            self._transition(Event.STOP)
            return False
        self._transition(Event.RESUME)
        return True

    def _start(self) -> None:
        """Create the SSLObject, now that the context can be chosen."""
        try:
            context = self._context
            if not isinstance(context, ssl.SSLContext):
                context = context(self._client_hello)
            openssl.observe_handshake_messages(context)
            self._obj = context.wrap_bio(self._incoming, self._outgoing,
                                         server_side=self._server_side,
                                         server_hostname=self._server_hostname)
        except (TlsFailure, ValueError) as error:
            # No context can be had (no identity configured, a CA file that
            # cannot be read): a client that sent its hello gets an alert,
            # the caller the reason.
            if self._server_side:
                self._alert = alert_record(AlertDescription.ACCESS_DENIED)
            self._fail(error if isinstance(error, TlsFailure)
                       else TlsFailure(str(error), kind=ErrorKind.CONFIGURATION))
        openssl.attach_observer(self._obj, self._observe)

    def _observe(self, direction: str, version: int, message_type: int, data: bytes) -> None:
        self._messages.append((direction, version, message_type, data))

    def _drive(self) -> bool:
        """Alternate OpenSSL steps with feeding it the peer's records, until the
        handshake completes, stops at the limit, or needs more bytes."""
        if self._obj is None:
            self._start()
        while True:
            if not self._openssl_done:
                self._step_openssl()
            if self._at_limit():
                return False
            if self._openssl_done:
                self._finish()
                return True
            fed = self._feed_next()
            if self._at_limit():
                return False
            if not fed:
                self._blocked_on_input = True
                return False

    def _at_limit(self) -> bool:
        """Suspend once the handshake has got as far as it may."""
        if self._limit < Point.DONE and self._limit in self._reached:
            self._transition(Event.STOP)
            return True
        return False

    def _step_openssl(self) -> None:
        try:
            self._obj.do_handshake()  # type: ignore[union-attr]
            self._openssl_done = True
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as exc:
            self._messages.clear()  # nothing was reached by a failing step
            self._fail(self._translate(exc, during_handshake=True))
        self._note_messages()

    def _feed_next(self) -> bool:
        """Give OpenSSL the next record (or, with no stop ahead, everything
        received); False when there is nothing to give or a stop comes first."""
        if self._held_record is not None:
            record, self._held_record = self._held_record, None
            self._incoming.write(record)
            return True
        if self._limit == Point.DONE:
            if self._inbox:
                self._give_inbox()
                return True
        else:
            record = take_record(self._inbox)
            if record is not None:
                return self._feed_record(record)
        if self._transport_eof and not self._eof_fed:
            self._give_inbox()
            self._feed_eof()
            return True
        return False

    def _feed_record(self, record: bytes) -> bool:
        if record[0] == ContentType.CHANGE_CIPHER_SPEC:
            self._peer_encrypts = True
        elif not self._server_side and not self._peer_encrypts:
            types = self._scanner.message_types(record)
            if (HandshakeType.CERTIFICATE_REQUEST in types
                    and self._limit == Point.CLIENT_IDENTITY_REQUEST):
                # A plaintext (TLS 1.2) request: stop before OpenSSL answers it.
                self._held_record = record
                self._certificate_requested = True
                self._reached.add(Point.CLIENT_IDENTITY_REQUEST)
                return False
        self._incoming.write(record)
        return True

    def _note_messages(self) -> None:
        """Advance the points from the handshake messages OpenSSL reported."""
        messages, self._messages = self._messages, []
        for direction, version, message_type, data in messages:
            if direction == "write":
                if message_type == HandshakeType.CERTIFICATE:
                    self._own_certificate = data
                continue
            if self._server_side:
                self._note_client_message(message_type)
            else:
                self._note_server_message(version, message_type)

    def _note_server_message(self, version: int, message_type: int) -> None:
        if self._established:
            return  # a post-handshake request; OpenSSL answers it with the current identity
        if message_type == HandshakeType.CERTIFICATE_REQUEST:
            self._certificate_requested = True
            self._reached.add(Point.CLIENT_IDENTITY_REQUEST)
        elif message_type == HandshakeType.CERTIFICATE:
            # OpenSSL verifies the chain as it processes this message (a bad
            # one fails this very step). Stopping here, not after the 1.3
            # CertificateVerify, matters: once that is processed, OpenSSL no
            # longer takes a client certificate swapped in by `use_context`.
            self._reached.add(Point.SERVER_CERTIFICATE)
            if version == TLS_1_3:
                # A 1.3 request comes before the certificate or not at all.
                self._reached.add(Point.CLIENT_IDENTITY_REQUEST)
        elif message_type in (HandshakeType.SERVER_HELLO_DONE, HandshakeType.FINISHED):
            self._reached.add(Point.CLIENT_IDENTITY_REQUEST)

    def _note_client_message(self, message_type: int) -> None:
        if message_type == HandshakeType.CERTIFICATE:
            if self._established:
                return  # a post-handshake answer; complete at its Finished
            if not openssl.unverified_chain(self._obj):  # type: ignore[arg-type]
                self._reached.add(Point.CLIENT_CERTIFICATE)  # an empty certificate
        elif message_type == HandshakeType.CERTIFICATE_VERIFY and not self._established:
            self._reached.add(Point.CLIENT_CERTIFICATE)
        elif message_type == HandshakeType.FINISHED:
            if self._established:
                self.post_handshake_request = False
            else:
                self._reached.add(Point.CLIENT_CERTIFICATE)

    def _finish(self) -> None:
        self._established = True
        self._blocked_on_input = False
        if self._held_record is not None:
            self._inbox[:0] = self._held_record
            self._held_record = None
        self._give_inbox()
        if self._transport_eof:
            self._feed_eof()
        self._transition(Event.FINISH)
        if self._tx:
            self._push_plaintext()

    def use_context(self, context: ssl.SSLContext) -> None:
        """Client: answer a certificate request with the identity in `context`
        (same trust), before OpenSSL has written its Certificate message."""
        self._raise_if_broken()
        if self.identity_committed:
            raise TlsFailure(
                "too late to send a client certificate: the server's certificate request "
                "arrived in the same record as the rest of its handshake, so there was "
                "no point at which to stop", kind=ErrorKind.CONFIGURATION)
        openssl.observe_handshake_messages(context)
        self._obj.context = context  # type: ignore[union-attr]

    def abort(self) -> None:
        """Abandon the handshake: drop what OpenSSL queued and send a fatal
        access_denied alert instead. The peer sees the connection end."""
        if self._error is not None:
            return
        self._outgoing.read()
        self._alert = alert_record(AlertDescription.ACCESS_DENIED)
        self.fail(TlsFailure("the handshake was aborted", kind=ErrorKind.ABORTED))

    def fail(self, error: TlsFailure) -> None:
        """Break the connection with an error found outside the core (a timeout)."""
        try:
            self._fail(error)
        except TlsFailure:
            pass

    def request_client_certificate(self) -> None:
        """Server, TLS 1.3, after the handshake: ask the client for a
        certificate; it arrives with the client's next records. Raises
        `TlsFailure` (without breaking the connection) when that cannot be done."""
        self._raise_if_broken()
        if not self._established or self._state not in (CoreState.OPEN, CoreState.READ_CLOSED):
            raise TlsFailure("a certificate can only be requested on an open connection",
                           kind=ErrorKind.CONFIGURATION)
        try:
            self._obj.verify_client_post_handshake()  # type: ignore[union-attr]
            self._obj.do_handshake()  # type: ignore[union-attr]  # queues the request
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLError, ValueError) as exc:
            raise TlsFailure(f"post-handshake authentication is not possible: "
                           f"{getattr(exc, 'reason', None) or exc}",
                           kind=ErrorKind.CONFIGURATION) from None
        self.post_handshake_request = True

    # ------------------------------------------------------------------
    # application data
    def read(self, max_bytes: int) -> bytes | None:
        """Return up to ``max_bytes`` of plaintext.

        ``None``: nothing available yet (feed more ciphertext, or wait).
        ``b""``: the peer ended the stream cleanly (close_notify), and on
        every call after that. A transport EOF without close_notify raises
        ``TlsFailure("peer closed without close_notify (truncated)")`` once
        (after any plaintext received before it), then reads return ``b""``.
        While the handshake is still running this drives it and returns
        ``None`` until it completes.
        """
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        self._raise_if_broken()
        if not self._established:
            if self._state is CoreState.CLOSED:
                return b""
            if not self.handshake():
                return None
        self._fill(max_bytes)
        if self._rx:
            if len(self._rx) <= max_bytes:
                out = bytes(self._rx)
                self._rx.clear()
            else:
                out = bytes(self._rx[:max_bytes])
                del self._rx[:max_bytes]
            return out
        if self._rx_error is not None:
            error, self._rx_error = self._rx_error, None
            if error.kind == ErrorKind.TRUNCATED:
                raise error  # reported once; the read side is closed, later reads give b""
            self._fail(error)
        if self._rx_eof:
            return b""
        return None

    def read_ready(self) -> bool:
        """True when `read` would return without needing more ciphertext.

        That is: plaintext is buffered, the stream has ended, or an error is
        waiting to be raised. Decrypts whatever complete records are already
        buffered, so it is cheap but not free. Never raises.
        """
        if self._error is not None:
            return True
        if not self._established:
            if self._state is CoreState.CLOSED:
                return True
            try:
                if not self.handshake():
                    return False
            except TlsFailure:
                return True
        self._fill(1)
        return bool(self._rx) or self._rx_eof or self._rx_error is not None

    def _fill(self, want: int) -> None:
        """Decrypt buffered records into ``_rx`` until it holds ``want`` bytes
        or OpenSSL needs more input. Stream end and errors are recorded, not
        raised, so plaintext that arrived before them is delivered first."""
        if self._rx_eof or self._rx_error is not None or self._ssl_dead:
            return
        progressed = False
        while len(self._rx) < want:
            try:
                chunk = self._obj.read(self._CHUNK)  # type: ignore[union-attr]
            except ssl.SSLWantReadError:
                self._blocked_on_input = True
                break
            except ssl.SSLZeroReturnError:
                self._end_of_input()  # close_notify after we sent ours
                break
            except ssl.SSLEOFError as exc:
                # The transport ended without close_notify. OpenSSL now
                # considers the session dead (writes fail too).
                self._ssl_dead = True
                if not self._suppress_ragged_eofs:
                    self._rx_error = self._translate(exc, during_handshake=False)
                self._end_of_input()
                break
            except ssl.SSLError as exc:
                self._rx_error = self._translate(exc, during_handshake=False)
                self._blocked_on_input = False
                break
            finally:
                if self._messages:
                    self._note_messages()  # post-handshake authentication
            if not chunk:
                self._end_of_input()  # close_notify: SSLObject.read returns b"" from now on
                break
            self._rx += chunk
            progressed = True
        if progressed and self._tx:
            # A write that was waiting for the peer (renegotiation) may go now.
            try:
                self._push_plaintext()
            except TlsFailure:
                pass  # sticky; raised by the next operation

    def _end_of_input(self) -> None:
        self._rx_eof = True
        self._blocked_on_input = False
        self._transition(Event.PEER_CLOSE)

    def write(self, data: bytes) -> None:
        """Encrypt all of ``data`` for the peer (then call ciphertext_to_send).

        ``b""`` is a no-op. Data written before the handshake completes is
        kept and encrypted once it does. Raises `TlsFailure` after `close`
        ("connection closed for writing") or when broken.
        """
        self._raise_if_broken()
        if self._state in _SENDING_CLOSED:
            raise TlsFailure(MSG_CLOSED_FOR_WRITING, kind=ErrorKind.CLOSED)
        if self._ssl_dead:
            raise TlsFailure("cannot write: the transport ended without close_notify",
                           kind=ErrorKind.EOF)
        if not data:
            return
        self._tx += data
        if self._established:
            self._push_plaintext()

    def _push_plaintext(self) -> None:
        """Encrypt buffered plaintext as far as OpenSSL takes it; then, if
        closing was asked for, queue close_notify."""
        while self._tx:
            try:
                written = self._obj.write(self._tx)  # type: ignore[union-attr]
            except ssl.SSLWantReadError:
                # Only while OpenSSL waits for the peer (a renegotiation);
                # the bytes stay for a retry.
                self._blocked_on_input = True
                return
            except ssl.SSLError as exc:
                self._fail(self._translate(exc, during_handshake=False))
            del self._tx[:written]
        if self._state in _SENDING_CLOSED and not self._close_notify_sent:
            self._send_close_notify()

    def close(self) -> None:
        """Queue close_notify (once) and refuse further writes. Idempotent.

        Reading stays possible: the peer may keep sending until its own
        close_notify (read then returns ``b""``). Before the handshake
        completes there is no close_notify to send; the connection just
        becomes ``"closed"``.
        """
        if self._error is not None or self._state in _SENDING_CLOSED:
            return
        self._transition(Event.CLOSE)
        if not self._established or self._ssl_dead:
            self._tx.clear()
            return
        try:
            self._push_plaintext()  # close_notify goes once the backlog is gone
        except TlsFailure:
            pass  # recorded as the sticky error

    def _send_close_notify(self) -> None:
        # unwrap() calls SSL_shutdown twice; the second call reads, and fails
        # with APPLICATION_DATA_AFTER_CLOSE_NOTIFY if records are waiting.
        # So decrypt everything already received into _rx first.
        self._fill(sys.maxsize)
        if self._ssl_dead or (self._rx_error is not None
                              and self._rx_error.kind != ErrorKind.TRUNCATED):
            return
        self._close_notify_sent = True
        try:
            self._obj.unwrap()  # type: ignore[union-attr]
        except ssl.SSLWantReadError:
            pass  # close_notify queued; the peer's has not arrived yet
        except ssl.SSLError:
            # Nothing useful to report from a failed goodbye; the state of the
            # read side is already recorded by _fill.
            pass

    # ------------------------------------------------------------------
    # information about the session
    def peer_chain(self) -> tuple[bytes, ...]:
        """The peer's certificates as it sent them (DER, leaf first); () if none.

        Available as soon as the peer's Certificate message has been processed.
        """
        if self._obj is None:
            return ()
        try:
            return openssl.unverified_chain(self._obj)
        except (ValueError, ssl.SSLError):
            return ()

    def protocol_version(self) -> int | None:
        """The negotiated version as on the wire (0x0303, 0x0304), or None."""
        return _PROTOCOL_CODES.get(self.version())

    def cipher_suite(self) -> int | None:
        """The IANA code of the negotiated cipher suite, or None."""
        cipher = self.cipher()
        if cipher is None:
            return None
        return _cipher_codes().get(cipher[0])

    def __repr__(self) -> str:
        role = "server" if self._server_side else f"client {self._server_hostname!r}"
        return f"<TlsCore {role} {self._state.value}>"


# Session facts OpenSSL knows once the handshake is complete (None before),
# each an SSLObject method. Listed as data, made into methods below.
_SESSION_INFO: dict[str, tuple[str, Callable[[ssl.SSLObject], object]]] = {
    "version": ('Negotiated protocol ("TLSv1.3", "TLSv1.2", ...) or None.',
                lambda obj: obj.version()),
    "cipher": ("(name, protocol, secret bits) of the negotiated cipher, or None.",
               lambda obj: obj.cipher()),
    "alpn_protocol": ("The ALPN protocol the server selected, or None.",
                      lambda obj: obj.selected_alpn_protocol()),
    "peer_certificate_der": ("The peer's leaf certificate (DER), or None if it sent none.",
                             lambda obj: obj.getpeercert(binary_form=True)),
}


def _session_getter(name: str, doc: str, read: Callable[[ssl.SSLObject], object]):
    def getter(self: TlsCore):
        if not self._established:
            return None
        try:
            return read(self._obj)  # type: ignore[arg-type]
        except (ValueError, ssl.SSLError):  # pragma: no cover - defensive
            return None
    getter.__name__ = getter.__qualname__ = name
    getter.__doc__ = doc
    return getter


for _name, (_doc, _read) in _SESSION_INFO.items():
    setattr(TlsCore, _name, _session_getter(_name, _doc, _read))

_PROTOCOL_CODES = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


@functools.cache
def _cipher_codes() -> dict[str, int]:
    """OpenSSL's cipher names and their IANA codes (the low 16 bits of its ids)."""
    everything = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    everything.set_ciphers("ALL:@SECLEVEL=0")
    return {cipher["name"]: cipher["id"] & 0xFFFF for cipher in everything.get_ciphers()}


@functools.cache
def _name_check_context() -> ssl.SSLContext:
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def check_server_name(name: str | None) -> None:
    """Raise ValueError for a server name OpenSSL would refuse, whatever the
    reason (empty, too long, bad characters), before any byte is sent."""
    if not name:
        raise ValueError("invalid server name: empty")
    try:
        _name_check_context().wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname=name)
    # Python refuses some names (ValueError, UnicodeError, TypeError), OpenSSL
    # others (SSLError: e.g. longer than 255 bytes): all are invalid names.
    except (ValueError, TypeError, ssl.SSLError) as error:
        raise ValueError(f"invalid server name {name!r}: {without_source_line(error)}") from None
