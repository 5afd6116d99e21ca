"""Sans-IO TLS connection, client or server, on top of ``ssl.SSLObject``.

Theory of operation
-------------------
The host speaks TLS for a WebAssembly guest over WASI streams it implements
itself. ``ssl.SSLSocket`` wants to own a real socket and block on it, so
this module does no I/O at all: it wraps an ``ssl.SSLObject`` whose two ends
are ``ssl.MemoryBIO`` buffers:

    transport bytes --receive_ciphertext()--> [inbox] --> [incoming BIO] --> OpenSSL
    OpenSSL --> [outgoing BIO] --ciphertext_to_send()--> transport bytes

The caller (the WASI glue) moves the bytes and decides *when*; the core
decides *what* they mean. The role matters only where the protocol differs:
who speaks first, which stop points exist, who reads the ClientHello.

A guest of the full wasi:tls draft can stop the handshake at points of
interest (`Point`) and resume it later, with no bytes moving meanwhile. The
core gives OpenSSL the peer's bytes one record at a time (``tls.inbound``)
and after each asks ``tls.progress`` whether the handshake messages OpenSSL
processed reached the limit; if so it stops feeding and holds what OpenSSL
queued to send until `resume`. A server reads the ClientHello itself
(``tls.client_hello``) so that its context (certificates, ALPN ids) can be
chosen from it before any ``SSLObject`` exists; OpenSSL then gets the same
bytes. Bytes it cannot read as a ClientHello go to OpenSSL at once, under a
context that serves nothing if the guest's cannot be had yet, so the peer
hears OpenSSL's verdict on them.

Every alert goes out as the peer expects it. OpenSSL sends its own through
its record layer. The host's own, for an abort and for a server without a
context, are chosen and written by ``tls.alerts``: Python's ``ssl`` has no
call to send an alert, so the host protects it itself, when this side's
records have already switched the peer to reading with keys (only a server
that stopped for the client's certificate), with the traffic secrets OpenSSL
hands its key log callback (``tls.openssl`` chains a callback of its own
there, so ``--tls-keylog`` still works) and a sequence number counted from
the record headers OpenSSL reports writing, less those the abort drops.

Every ``SSLObject`` call goes through one funnel, `_call`, the only place
that catches ``ssl.SSLError``. It keeps the handshake messages the call
processed (a call that fails reached nothing), records whether OpenSSL is
starved of the peer's bytes ("need more data" is a value, `Stop`), and
decides what a failure means: during the handshake it breaks the
connection; after it, a failed read ends the read side (close_notify
cleanly, a transport EOF as truncation, anything else with an error raised
once the plaintext decrypted before it has been read); a refused
post-handshake certificate request harms nothing; any other failure breaks
the connection. A read that processed the peer's KeyUpdate asking for ours
is followed by an empty write: OpenSSL 3 writes its answer only when asked
to write, and a peer that only waits must still get it. The life cycle is a
table (``tls.state``) and `_transition` the one place the state changes.
Failures are sticky: every operation after the first fatal error raises
that same `TlsFailure` (OpenSSL is never asked twice), and an alert OpenSSL
queued while failing still goes out.

Habits borrowed from h11 and trio's ssl wrapper: reads and writes before
the handshake completes drive or wait for it; plaintext OpenSSL could not
take yet is retried by the one pump `_push_plaintext`; close_notify is
queued at most once, after draining the incoming BIO (``unwrap`` fails if
application data is waiting). Nothing here imports wasmtime.
"""

from __future__ import annotations

import ssl
import sys
from collections.abc import Callable
from contextlib import suppress
from typing import Any, NoReturn

from . import openssl
from .alerts import OwnRecords
from .client_hello import ClientHello, ClientHelloError, parse_client_hello
from .errors import MSG_CLOSED_FOR_WRITING, MSG_EOF_IN_HANDSHAKE, ErrorKind, TlsFailure, translate
from .facts import SessionFacts
from .inbound import Inbound
from .openssl import check_server_name
from .progress import Point, Progress, Role
from .records import AlertDescription, alert_record
from .state import (
    READING,
    RECEIVING,
    SENDING_CLOSED,
    TRANSITIONS,
    CoreState,
    Event,
    next_state,
)

__all__ = ["TlsCore", "TlsFailure", "CoreState", "Point", "ErrorKind", "TRANSITIONS",
           "check_server_name", "ContextFactory", "SessionSource"]


class Op:
    """The ``SSLObject`` calls the core makes, by method name (plain strings: see `Stop`)."""

    HANDSHAKE = "do_handshake"
    READ = "read"
    WRITE = "write"
    GOODBYE = "unwrap"  #: queue close_notify
    REQUEST_CERTIFICATE = "verify_client_post_handshake"


class Stop(str):
    """What an `SSLObject` call that did not get its result gives instead. Module
    constants, not enum members: the funnel runs for every record, and in
    Python 3.11 every access to an enum member is slow."""


NEED_INPUT = Stop("need-input")  #: OpenSSL waits for more of the peer's bytes
READ_SIDE_ENDED = Stop("read-side-ended")  #: no more plaintext (see `TlsCore._fill`)


#: Builds the context once a server knows the ClientHello (None if unreadable).
ContextFactory = Callable[[ClientHello | None], ssl.SSLContext]
#: Client: the earlier session to offer from the chosen context, if any.
SessionSource = Callable[[ssl.SSLContext], ssl.SSLSession | None]


class TlsCore(SessionFacts):
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
    until asked. What was negotiated: `SessionFacts`. A client's
    ``server_hostname`` is checked (``ValueError`` if OpenSSL refuses it)
    unless ``name_accepted`` says it was before.
    """

    #: Plaintext requested from OpenSSL per call: one full record.
    _CHUNK = 16384

    def __init__(self, context: ssl.SSLContext | ContextFactory, *, server_side: bool = False,
                 server_hostname: str | None = None, suppress_ragged_eofs: bool = False,
                 run_until: Point = Point.DONE, name_accepted: bool = False,
                 offer_session: SessionSource | None = None) -> None:
        if not server_side and not name_accepted:
            check_server_name(server_hostname)
        self._context = context
        self._offer_session = offer_session
        self.server_side = server_side
        self.server_hostname = server_hostname
        #: Server: what the client offered, once read (None before, or if unreadable).
        self.client_hello: ClientHello | None = None
        self.close_notify_sent = False
        self._suppress_ragged_eofs = suppress_ragged_eofs
        self._outgoing = ssl.MemoryBIO()
        self._obj: ssl.SSLObject | None = None

        self._progress = Progress(Role.SERVER if server_side else Role.CLIENT, run_until)
        self._state = (CoreState.SUSPENDED if run_until == Point.START
                       else CoreState.AWAITING_CLIENT_HELLO if server_side
                       else CoreState.HANDSHAKING)
        self._error: TlsFailure | None = None

        self._inbound = Inbound(self._progress)
        self._starved = False  # the last attempt to progress needs the peer's bytes
        #: OpenSSL's last handshake step asked for the peer's bytes (a server's
        #: first one would: it starts by reading the ClientHello).
        self._awaiting_bytes = server_side

        self._rx = bytearray()  # decrypted plaintext not yet returned by read()
        self._rx_error: TlsFailure | None = None  # why reading ended; raised once _rx is drained
        self._tx = bytearray()  # plaintext accepted by write() but not yet encrypted
        self._alert = b""  # an alert of our own, sent when abandoning a handshake
        self._own_records = OwnRecords(server_side)  # counted until the handshake completes

    def _transition(self, event: Event) -> None:
        """The one place the state changes."""
        self._state = next_state(self._state, event)

    def _fail(self, error: TlsFailure) -> NoReturn:
        """Enter the broken state with ``error`` and raise it."""
        if self._error is None:
            self._error = error
            self._transition(Event.FAIL)
            self._rx.clear()
            self._tx.clear()
        raise self._error

    def _raise_if_broken(self) -> None:
        if self._error is not None:
            # The same object every time: drop the old traceback so it does not grow.
            raise self._error.with_traceback(None)

    # the funnel
    def _call(self, op: str, *args: Any) -> Any:
        """Make one ``SSLObject`` call: its result, or a `Stop` (see the module notes)."""
        if self._obj is None:
            raise TlsFailure(f"TLS core: {op} before the handshake started",
                             kind=ErrorKind.PROTOCOL)
        try:
            result = getattr(self._obj, op)(*args)
        except ssl.SSLWantReadError:
            result = NEED_INPUT
        except ssl.SSLError as exc:
            self._progress.discard()
            return self._call_failed(op, exc)
        if result is NEED_INPUT:
            self._starved = True
        elif op is Op.READ or not self._progress.done:
            self._starved = False  # OpenSSL took what it needed from the peer
        self._progress.commit()
        if self._progress.key_update_requested and self._state is CoreState.OPEN:
            # OpenSSL 3 writes its answer to a KeyUpdate only when asked to
            # write; the peer may be waiting for it, and an empty write will do.
            self._progress.key_update_requested = False
            self._call(Op.WRITE, b"")
        return result

    def _call_failed(self, op: str, exc: ssl.SSLError) -> Stop:
        if op is Op.REQUEST_CERTIFICATE:
            raise TlsFailure(f"post-handshake authentication is not possible: "
                             f"{exc.reason or exc}", kind=ErrorKind.CONFIGURATION) from None
        in_handshake = not self.handshake_complete
        failure = translate(exc, during_handshake=in_handshake, server_side=self.server_side,
                            server_hostname=self.server_hostname)
        if in_handshake or op is not Op.READ:
            self._fail(failure)
        if isinstance(exc, ssl.SSLZeroReturnError):
            self._transition(Event.PEER_CLOSE)  # close_notify, after we sent ours
        else:
            self._rx_error = failure
            if isinstance(exc, ssl.SSLEOFError):
                self._transition(Event.TRUNCATE)
        return READ_SIDE_ENDED

    # transport side
    def receive_ciphertext(self, data: bytes) -> None:
        """Hand bytes read from the transport to TLS. Empty data is ignored."""
        self._raise_if_broken()
        if data:
            self._inbound.receive(data)
            self._starved = False

    def receive_eof(self) -> None:
        """Tell TLS that the transport reached end of file. Idempotent."""
        if self._inbound.receive_eof():
            self._starved = False

    def ciphertext_to_send(self) -> bytes:
        """Return (and forget) every byte waiting to go to the transport.

        Nothing while the handshake is suspended. Never raises; a connection
        that just broke still yields the alert queued while failing.
        """
        if self._state is CoreState.SUSPENDED:
            return b""
        if self._tx and self.handshake_complete and self._error is None:
            with suppress(TlsFailure):  # the sticky error, raised by the next operation
                self._push_plaintext()
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
        peer's bytes (never while suspended, never with plaintext or an
        error unread).

        It becomes False again as soon as new ciphertext (or EOF) arrives, so
        the caller should retry the operation and ask again.
        """
        return (self._starved and not self._rx and self._rx_error is None
                and self._state in RECEIVING)

    # handshake
    def resume(self, until: Point) -> None:
        """Let the handshake run up to `until` (it never goes back). A broken
        connection stays broken: the next operation reports why."""
        if self._error is not None or not self._progress.allow(until):
            return
        self._starved = False  # a record held at the stop may now go in
        if self._state is CoreState.SUSPENDED:
            waiting = self.server_side and self.client_hello is None
            self._transition(Event.AWAIT_HELLO if waiting else Event.RESUME)

    def handshake(self) -> bool:
        """Drive the handshake as far as it may go.

        Returns ``True`` once it is complete (and on every later call),
        ``False`` when it needs more ciphertext from the peer or is
        suspended (see `suspended_at`). Raises `TlsFailure` on failure.
        """
        self._raise_if_broken()
        if self.handshake_complete:
            return True
        state = self._state
        if state is CoreState.CLOSED_IN_HANDSHAKE:
            raise TlsFailure("connection closed before the handshake completed",
                             kind=ErrorKind.CLOSED)
        if state is CoreState.SUSPENDED or self._starved:
            # Starved: nothing has arrived since OpenSSL last asked for more, and
            # another step would only fail the same way (the pump asks on every poll).
            return False
        if state is CoreState.AWAITING_CLIENT_HELLO and not self._read_client_hello():
            return False
        return self._drive()

    def _read_client_hello(self) -> bool:
        """Server: parse the ClientHello from the inbox; True once the handshake may go on."""
        try:
            hello = parse_client_hello(self._inbound.inbox)
        except ClientHelloError:
            # Not a ClientHello we can read: OpenSSL judges the bytes, all of
            # them (no stop here), so the peer gets OpenSSL's alert and the
            # error its precise reason.
            self._inbound.give_inbox()
            self._transition(Event.RESUME)
            return True
        if hello is None:
            if self._inbound.transport_eof:
                self._fail(TlsFailure(MSG_EOF_IN_HANDSHAKE, kind=ErrorKind.EOF))
            self._starved = True
            return False
        self.client_hello = hello
        self._progress.reach(Point.CLIENT_HELLO)
        if self._at_limit():
            return False
        self._transition(Event.RESUME)
        return True

    def _start(self) -> ssl.SSLObject:
        """Create the SSLObject, now that the context can be chosen."""
        try:
            context = self._choose_context()
            openssl.observe_handshake_messages(context)
            # Only a server that may stop for the client's certificate can
            # abort after its records switched the peer to keys (tls.alerts):
            # other handshakes skip the cost of the key log callback.
            self._own_records.keys_observed = (
                self.server_side and self._progress.limit == Point.CLIENT_CERTIFICATE
                and openssl.observe_secrets(context))
            obj = context.wrap_bio(self._inbound.bio, self._outgoing,
                                   server_side=self.server_side,
                                   server_hostname=self.server_hostname)
            if self._offer_session is not None:
                session = self._offer_session(context)
                if session is not None:
                    obj.session = session
        except (TlsFailure, ValueError) as error:
            # No context can be had (no identity configured, a CA file that
            # cannot be read): a client that sent its hello is told that
            # nothing it did is wrong, the caller the reason.
            if self.server_side:
                self._alert = alert_record(AlertDescription.INTERNAL_ERROR)
            self._fail(error if isinstance(error, TlsFailure)
                       else TlsFailure(str(error), kind=ErrorKind.CONFIGURATION))
        own = self._own_records
        openssl.attach_observer(obj, self._progress.observe, records=own.record_written,
                                secrets=own.secret)
        return obj

    def _choose_context(self) -> ssl.SSLContext:
        context = self._context
        if isinstance(context, ssl.SSLContext):
            return context
        try:
            return context(self.client_hello)
        except (TlsFailure, ValueError):
            if self.server_side and self.client_hello is None:
                # Bytes that are no ClientHello the parser can read: OpenSSL
                # judges them whatever the guest configured (or has not yet).
                return openssl.judging_context()
            raise

    def _drive(self) -> bool:
        """Alternate OpenSSL steps with feeding it the peer's records, until the
        handshake completes, stops at the limit, or needs more bytes (then
        the last step left the core starved)."""
        if self._obj is None:
            self._obj = self._start()
        progress = self._progress
        while True:
            if self._awaiting_bytes and not self._inbound.bio.pending:
                # OpenSSL's last step stopped for the peer's bytes: a step
                # before more are given would only stop the same way.
                fed = self._inbound.give_next()
                if fed:
                    self._awaiting_bytes = False
                if self._at_limit():
                    return False
                if not fed:
                    self._starved = True
                    return False
            if not progress.openssl_finished:
                progress.openssl_finished = self._call(Op.HANDSHAKE) is not NEED_INPUT
                self._awaiting_bytes = not progress.openssl_finished
            if self._at_limit():
                return False
            if progress.openssl_finished:
                self._finish()
                return True

    def _at_limit(self) -> bool:
        """Suspend once the handshake has got as far as it may."""
        if self._progress.at_limit():
            self._transition(Event.STOP)
            return True
        return False

    def _finish(self) -> None:
        if self._obj is not None:  # no more alerts of our own: stop counting records
            openssl.stop_handshake_reports(self._obj)
        held = self._progress.finish()
        if held is not None:
            self._inbound.inbox[:0] = held
        self._inbound.give_all()
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
        if self._obj is None:
            raise TlsFailure("no certificate request to answer: the handshake has not started",
                             kind=ErrorKind.CONFIGURATION)
        openssl.observe_handshake_messages(context)
        self._obj.context = context

    def abort(self) -> None:
        """Abandon the handshake: drop what OpenSSL queued and send a fatal
        alert instead, chosen and protected by ``tls.alerts``. The peer sees
        the connection end."""
        if self._error is not None:
            return
        dropped = self._outgoing.read()
        cipher = self._obj.cipher() if self._obj is not None else None
        if not self.handshake_complete:
            self._alert = self._own_records.abort_alert(
                dropped=dropped, suite=openssl.cipher_codes().get(cipher[0]) if cipher else None,
                missing_client_certificate=(self.server_side and not self.peer_chain()
                                            and self.reached(Point.CLIENT_CERTIFICATE)))
        self.fail(TlsFailure("the handshake was aborted", kind=ErrorKind.ABORTED))

    def fail(self, error: TlsFailure) -> None:
        """Break the connection with an error found outside the core (a timeout)."""
        with suppress(TlsFailure):
            self._fail(error)

    def request_client_certificate(self) -> None:
        """Server, TLS 1.3, after the handshake: ask the client for a
        certificate; it arrives with the client's next records. Raises
        `TlsFailure` (without breaking the connection) when that cannot be done."""
        self._raise_if_broken()
        if self._state not in (CoreState.OPEN, CoreState.READ_CLOSED):
            raise TlsFailure("a certificate can only be requested on an open connection",
                             kind=ErrorKind.CONFIGURATION)
        self._call(Op.REQUEST_CERTIFICATE)
        self._call(Op.HANDSHAKE)  # queues the request
        self._progress.post_handshake_request = True

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
        if not self.handshake_complete:
            if self._state is CoreState.CLOSED_IN_HANDSHAKE:
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
            if error.kind != ErrorKind.TRUNCATED:
                self._fail(error)
            if not self._suppress_ragged_eofs:
                raise error  # reported once; the read side is closed, later reads give b""
        if self.peer_closed:
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
        if not self.handshake_complete:
            if self._state is CoreState.CLOSED_IN_HANDSHAKE:
                return True
            try:
                if not self.handshake():
                    return False
            except TlsFailure:
                return True
        self._fill(1)
        return bool(self._rx) or self.peer_closed or self._rx_error is not None

    def _fill(self, want: int) -> None:
        """Decrypt buffered records into ``_rx`` until it holds ``want`` bytes
        or OpenSSL needs more input. How the read side ends is recorded, not
        raised, so plaintext that arrived before it is delivered first."""
        if self._state not in READING or self._rx_error is not None:
            return
        progressed = False
        while len(self._rx) < want:
            chunk = self._call(Op.READ, self._CHUNK)
            if isinstance(chunk, Stop):
                break
            if not chunk:
                self._transition(Event.PEER_CLOSE)  # close_notify: read() gives b"" from now on
                break
            self._rx += chunk
            progressed = True
        if progressed and self._tx:
            # A write that was waiting for the peer (renegotiation) may go now.
            with suppress(TlsFailure):  # the sticky error, raised by the next operation
                self._push_plaintext()

    def write(self, data: bytes) -> None:
        """Encrypt all of ``data`` for the peer (then call ciphertext_to_send).

        ``b""`` is a no-op. Data written before the handshake completes is
        kept and encrypted once it does. Raises `TlsFailure` after `close`
        ("connection closed for writing") or when broken.
        """
        self._raise_if_broken()
        if self._state in SENDING_CLOSED:
            raise TlsFailure(MSG_CLOSED_FOR_WRITING, kind=ErrorKind.CLOSED)
        if self._state is CoreState.TRUNCATED:
            raise TlsFailure("cannot write: the transport ended without close_notify",
                             kind=ErrorKind.EOF)
        if not data:
            return
        self._tx += data
        if self.handshake_complete:
            self._push_plaintext()

    def _push_plaintext(self) -> None:
        """Encrypt buffered plaintext as far as OpenSSL takes it; then, if
        closing was asked for, queue close_notify."""
        while self._tx:
            written = self._call(Op.WRITE, self._tx)
            if written is NEED_INPUT:
                return  # OpenSSL waits for the peer (a renegotiation); the bytes stay
            del self._tx[:written]
        if self._state in SENDING_CLOSED and not self.close_notify_sent:
            self._send_close_notify()

    def close(self) -> None:
        """Queue close_notify (once) and refuse further writes. Idempotent.

        Reading stays possible: the peer may keep sending until its own
        close_notify (read then returns ``b""``). Before the handshake
        completes there is no close_notify to send; the connection just
        becomes ``"closed-in-handshake"``.
        """
        if self._error is not None or self._state in SENDING_CLOSED:
            return
        truncated = self._state is CoreState.TRUNCATED
        self._transition(Event.CLOSE)
        if not self.handshake_complete or truncated:
            self._tx.clear()  # nothing can be sent any more
            return
        with suppress(TlsFailure):  # the sticky error, raised by the next operation
            self._push_plaintext()  # close_notify goes once the backlog is gone

    def _send_close_notify(self) -> None:
        # unwrap() calls SSL_shutdown twice; the second call reads, and fails
        # with APPLICATION_DATA_AFTER_CLOSE_NOTIFY if records are waiting.
        # So decrypt everything already received into _rx first. If that
        # ends the read side with an error or a truncation, OpenSSL has
        # nothing more to say.
        self._fill(sys.maxsize)
        if self._rx_error is None:
            self.close_notify_sent = True
            self._call(Op.GOODBYE)  # NEED_INPUT: the peer's close_notify is still to come

    def resumable_session(self) -> tuple[ssl.SSLContext, ssl.SSLSession] | None:
        """Client: the session this connection ended with and the context it
        belongs to, if it ended well: the handshake completed, nothing broke
        and the peer did not truncate the stream. Under TLS 1.3 that is the
        latest ticket OpenSSL read (tickets come after the handshake)."""
        obj = self._obj
        if (obj is None or self.server_side or not self.handshake_complete
                or self._error is not None or self._rx_error is not None
                or self._state is CoreState.TRUNCATED):
            return None
        session = obj.session
        return (obj.context, session) if session is not None else None

    def __repr__(self) -> str:
        role = "server" if self.server_side else f"client {self.server_hostname!r}"
        return f"<TlsCore {role} {self._state.value}>"
