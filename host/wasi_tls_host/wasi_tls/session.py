"""The role-neutral glue between a sans-IO TLS core and the guest's streams.

Both TLS interfaces (the upstream `wasi:tls/types` client and the full
`wasi-tls-host:tls/tls` draft) are thin tables over what is here, and
neither reaches past it to the core:

* `TlsSession` owns a `tls.core.TlsCore` and the two transport streams
  under it (TCP, a pipe, another TLS stream: anything in `runtime.streams`).
  Its single `pump()` moves ciphertext between them without blocking: it
  pushes queued ciphertext out as far as the transport's `check-write`
  allows, reads transport bytes only when the core is starved, and drives the
  handshake. Every guest-visible operation calls `pump()`, so a guest that
  only calls `get` between polls still makes progress, and every pollable's
  `wait_on()` names exactly the transport readiness `pump()` needs; an input
  stream whose session already holds the peer's bytes is due at once (a TLS
  connection nested in this one, sending, makes it pull them in). A
  suspended handshake makes the core hold its bytes, so the pump moves
  nothing in either direction until the guest resumes it. Reading can make
  OpenSSL speak too (a post-handshake Certificate, an alert), so whatever a
  read queued goes to the transport before the read returns, not when
  something else next wakes the session.
* The session also answers everything an interface asks about the
  connection: how far the handshake got, the session facts, the identities
  each side sent, and the two late turns of the draft (a client's identity
  chosen at a certificate request, a server's request after the handshake).
  Its context comes from a `ContextChoice` the interface makes with the
  host's `TlsPolicy` when the core first needs one.
* A session keeps one failure record, `failure`: why it failed (a TLS error,
  the handshake timing out, the transport failing) and whether reading is
  over too. Only the transport failing for writing after the handshake
  leaves reading open, so that what the peer already sent (say, an early
  error response) can still be read. A transport write failure gives way to
  a failure that ends more, or that the same pump step runs into next (the
  peer's close or reset is why the write failed); otherwise the first stays.
* `TlsInput` / `TlsOutput` are the plaintext streams the guest reads and
  writes; `stream_failure` is the one mapping from TLS errors to stream errors.
* `handshake_future` is the `runtime.futures.Future` for the handshake
  getting as far as a step asks.
* A client of a guest run with resumption on (`tls.resumption`) offers a
  session its run kept for the same server, and keeps the one it ends with
  when it is closed.

The handshake deadline covers each stretch in which the host waits for the
peer: it restarts whenever the guest resumes a suspended handshake.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..runtime.futures import Failed, Future, Ready
from ..runtime.poll import WaitSpec, earliest
from ..runtime.streams import OUTPUT_BUDGET, InputStream, OutputStream, StreamClosed, StreamFailed
from ..tls.client_hello import ClientHello
from ..tls.core import CoreState, Point, TlsCore
from ..tls.errors import ErrorKind, TlsFailure
from ..tls.policy import ClientAuth, ContextChoice

if TYPE_CHECKING:
    from ..runtime.context import Lingering, WasiCtx
    from ..tls.identity import PrivateIdentity, PublicIdentity
    from ..tls.resumption import Resumption

#: Most transport bytes one pump step reads.
TRANSPORT_READ = 64 * 1024
NS_PER_S = 1_000_000_000

#: Makes a session's context once the core needs one: a server's from the
#: ClientHello (None when it could not be read), a client's from None.
ContextSource = Callable[[ClientHello | None], ContextChoice]


def stream_failure(error: TlsFailure | StreamFailed) -> StreamFailed:
    """The stream error a guest sees for a failed TLS connection."""
    if isinstance(error, StreamFailed):
        return StreamFailed(f"transport failed: {error.message}")
    return StreamFailed(str(error))


@dataclass(frozen=True)
class SessionFailure:
    """Why a session failed, and whether that ended reading too (writing is
    over either way)."""

    error: TlsFailure | StreamFailed
    ends_reading: bool = True


class TlsSession:
    """A TLS connection, client or server, glued to its transport streams.

    A client is made for `server_name`, a server without one;
    ``ValueError`` for a name OpenSSL refuses, before any byte is sent.
    """

    def __init__(self, choose: ContextSource, transport_in: InputStream,
                 transport_out: OutputStream, *, server_name: str | None,
                 run_until: Point, now_ns: Callable[[], int], handshake_timeout_s: float,
                 linger: Callable[[Lingering], None], name_accepted: bool = False,
                 resumption: Resumption | None = None):
        self._choose = choose
        self._resumption = resumption
        self.core = TlsCore(self._choose_context, server_side=server_name is None,
                            server_hostname=server_name, run_until=run_until,
                            name_accepted=name_accepted,
                            offer_session=resumption.offer if resumption is not None else None)
        self.transport_in = transport_in
        self.transport_out = transport_out
        self.now_ns = now_ns
        self.handshake_timeout_ns = int(handshake_timeout_s * NS_PER_S)
        self.deadline_ns = now_ns() + self.handshake_timeout_ns
        #: Who is on the other end, for messages ("server name: example.com").
        self.peer = f"server name: {server_name}" if server_name is not None else "the client"
        self._linger = linger
        self.outgoing = bytearray()
        self.failure: SessionFailure | None = None
        self.closed = False
        #: The identities this side may send (loaded into its context).
        self.identities: tuple[PrivateIdentity, ...] = ()
        #: When a server asks for the client's certificate.
        self.client_auth = ClientAuth.NONE

    def _choose_context(self, hello: ClientHello | None) -> ssl.SSLContext:
        choice = self._choose(hello)
        self.identities = choice.identities
        self.client_auth = choice.client_auth
        return choice.context

    # -- how far it got -------------------------------------------------------
    @property
    def handshake_done(self) -> bool:
        return self.core.handshake_complete

    @property
    def started(self) -> bool:
        """Whether the context has been chosen (nothing can be configured any more)."""
        return self.core.started

    @property
    def suspended(self) -> bool:
        return self.core.state is CoreState.SUSPENDED

    def reached(self, point: Point) -> bool:
        return self.core.reached(point)

    @property
    def resumed(self) -> bool:
        """Whether the handshake completed by resuming an earlier session."""
        return self.core.session_reused()

    @property
    def broken(self) -> bool:
        """Whether the session has failed for good (reading included)."""
        return self.failure is not None and self.failure.ends_reading

    # -- what the handshake settled ---------------------------------------------
    @property
    def client_hello(self) -> ClientHello | None:
        """Server: the ClientHello, once read."""
        return self.core.client_hello

    def alpn_id(self) -> bytes | None:
        """The ALPN id the server selected, once the handshake is done."""
        selected = self.core.alpn_protocol()
        return selected.encode() if selected else None

    def protocol_version(self) -> int | None:
        return self.core.protocol_version()

    def cipher_suite(self) -> int | None:
        return self.core.cipher_suite()

    def peer_identity(self) -> PublicIdentity | None:
        """The chain the peer sent, once its certificate has been processed
        (verified); None before that, or when it sent none (a client may not)."""
        point = Point.CLIENT_CERTIFICATE if self.core.server_side else Point.SERVER_CERTIFICATE
        chain = self.core.peer_chain() if self.core.reached(point) else ()
        if not chain:
            return None
        # Here, not at the top: identities bring in cryptography, which the
        # upstream client (all this module serves it) never needs.
        from ..tls.identity import PublicIdentity
        return PublicIdentity(chain)

    def identity_sent(self) -> PrivateIdentity | None:
        """Which of this side's identities went out in its Certificate
        message; None before it went, or when none did."""
        message = self.core.own_certificate_message
        if message is None:
            return None
        return next((identity for identity in self.identities
                     if identity.public.chain[0] in message), None)

    @property
    def certificate_requested(self) -> bool:
        """Client: the server asked for a certificate in the handshake."""
        return self.core.certificate_requested

    @property
    def identity_committed(self) -> bool:
        """Client: OpenSSL has already written the Certificate message it answers with."""
        return self.core.identity_committed

    # -- the guest's turns ------------------------------------------------------
    def resume(self, until: Point) -> None:
        """Let the handshake run on to `until`; the peer gets a fresh deadline."""
        if not self.broken:
            self.deadline_ns = self.now_ns() + self.handshake_timeout_ns
            self.core.resume(until)
        self.pump()

    def answer_certificate_request(self, choose: Callable[[], ContextChoice]) -> None:
        """Client: answer the server's certificate request with the identity
        in the context `choose` makes (the same trust and ALPN ids). When
        that cannot be (the context cannot be made now, or OpenSSL has
        already answered), the handshake fails with why."""
        try:
            choice = choose()
            self.core.use_context(choice.context)
        except TlsFailure as error:
            self.fail(error)
            return
        except ValueError as error:  # no context now (a CA file gone since start-up)
            self.fail(TlsFailure(str(error), kind=ErrorKind.CONFIGURATION))
            return
        self.identities = choice.identities

    def request_peer_identity(self) -> Future:
        """Server, TLS 1.3, after the handshake: ask the client for a
        certificate. The future settles with its answer (`peer_identity`),
        which comes with the client's next records. Raises `TlsFailure` when
        it cannot be asked: before the handshake is done, when the context
        was not chosen for it (`ClientAuth.POST_HANDSHAKE`), while a request
        is outstanding, or when OpenSSL refuses."""
        if (not self.handshake_done or self.client_auth is not ClientAuth.POST_HANDSHAKE
                or self.core.post_handshake_request):
            raise TlsFailure("a client certificate can be requested after the handshake "
                             "only from a TLS 1.3 client that offered post-handshake "
                             "authentication, one request at a time",
                             kind=ErrorKind.CONFIGURATION)
        self.core.request_client_certificate()
        self.pump()

        def settle() -> Ready | Failed | None:
            self.read_ready()
            if not self.core.post_handshake_request:
                return Ready(self.peer_identity())
            if self.broken:
                return Failed(self.error_message())
            return None
        return Future(settle, lambda: self.wait_spec(deadline=False))

    def fail(self, error: TlsFailure) -> None:
        """Break the session with an error found by an interface (a late answer)."""
        self.core.fail(error)
        self._note_core_failure()
        self.pump()

    def abort(self) -> None:
        """Abandon the handshake: the core's alert replaces anything it held."""
        self.core.abort()
        self._note_core_failure()
        self.pump()

    # -- plaintext ----------------------------------------------------------------
    def read(self, max_bytes: int) -> bytes | None:
        """Up to `max_bytes` of the peer's plaintext: None while none is
        there, b"" once its stream ended. Raises what ended reading: a
        `TlsFailure` (a truncation just once), or the transport's `StreamFailed`."""
        self.pump()
        try:
            data = self.core.read(max_bytes)
            if data is None:
                self.pump()
                data = self.core.read(max_bytes)
        finally:
            self._send_ciphertext()  # what reading made OpenSSL say
        if data is None and self.failure is not None and self.failure.ends_reading:
            raise self.failure.error.with_traceback(None)
        return data

    def read_ready(self) -> bool:
        """Whether `read` would return without the peer's help: plaintext,
        the stream's end or a failure is there."""
        self.pump()
        if self.broken:
            return True
        ready = self.core.read_ready()
        self._send_ciphertext()  # what decrypting made OpenSSL say
        return ready

    def write(self, data: bytes) -> None:
        """Encrypt `data` for the peer and send what the transport takes.
        Raises `TlsFailure` when the connection takes no more plaintext."""
        self.core.write(data)
        self.pump()

    def close_sending(self) -> None:
        """Queue close_notify (once); reading goes on."""
        self.core.close()
        self.pump()

    # -- the pump -----------------------------------------------------------
    def pump(self) -> None:
        """Make every bit of progress possible right now, without blocking."""
        if self.broken:
            self._send_ciphertext()
            return
        try:
            if not self.handshake_done:
                self._step_handshake()
            self._send_ciphertext()
            if self.core.wants_ciphertext() and self._receive_ciphertext():
                if not self.handshake_done:
                    self._step_handshake()
                self._send_ciphertext()
        except (TlsFailure, StreamFailed) as error:
            # This replaces a transport write failure met earlier in this
            # step: the peer closing or resetting (what made the write fail)
            # says more. A session that was broken before does not get here.
            self.failure = SessionFailure(error)
            self._send_ciphertext()

    def _record(self, error: TlsFailure | StreamFailed, *, ends_reading: bool = True) -> None:
        """Keep the first failure, unless a later one ends more (reading too)."""
        if self.failure is None or (ends_reading and not self.failure.ends_reading):
            self.failure = SessionFailure(error, ends_reading)

    def _note_core_failure(self) -> None:
        """The core broke on its own (a record it decrypted, plaintext it
        encrypted, an abort): that is the session's failure too."""
        if self.core.error is not None:
            self._record(self.core.error)

    def _step_handshake(self) -> None:
        if (not self.core.handshake() and not self.suspended
                and self.now_ns() >= self.deadline_ns):
            error = TlsFailure(f"handshake timed out ({self.peer})", kind=ErrorKind.TIMEOUT)
            self.core.fail(error)
            raise error

    def _send_ciphertext(self) -> bool:
        """Hand queued ciphertext to the transport as far as it takes it;
        False when the transport takes nothing more (closed or failed).

        `check_write` is called even with nothing queued here: it is what
        lets a buffering transport (TCP) push out what it still holds. A
        failed transport keeps failing, so this keeps finding out.
        """
        self.outgoing += self.core.ciphertext_to_send()
        self._note_core_failure()
        try:
            permit = self.transport_out.check_write()
            if permit and self.outgoing:
                chunk = bytes(self.outgoing[:permit])
                self.transport_out.write(chunk)
                del self.outgoing[:len(chunk)]
        except (StreamClosed, StreamFailed) as error:
            self._record(error if isinstance(error, StreamFailed) else
                         StreamFailed("the transport closed for writing"),
                         ends_reading=not self.handshake_done)
            return False
        return True

    def _receive_ciphertext(self) -> bool:
        """Hand the core what the transport has; False when it had nothing
        (then the core has nothing new to say either)."""
        try:
            data = self.transport_in.read(TRANSPORT_READ)
        except StreamClosed:
            self.core.receive_eof()
            return True
        except StreamFailed as error:
            if not self.handshake_done and error.network_code == "connection-reset":
                raise TlsFailure("peer closed the connection during the handshake "
                                 "(connection reset)", kind=ErrorKind.EOF) from None
            raise
        self.core.receive_ciphertext(data)
        return bool(data)

    # -- readiness ------------------------------------------------------------
    def wait_spec(self, *, deadline: bool) -> WaitSpec:
        """What could unblock the pump: transport input, transport output, time."""
        fds = self.transport_out.wait_on().fds
        running = deadline and not self.suspended and not self.handshake_done
        deadline_ns = self.deadline_ns if running else None
        if self.core.wants_ciphertext():
            incoming = self.transport_in.wait_on()
            fds += incoming.fds
            # A transport that is another TLS stream says "now" with a deadline.
            deadline_ns = earliest(deadline_ns, incoming.deadline_ns)
        return WaitSpec(fds=fds, deadline_ns=deadline_ns)

    def input_in_hand(self) -> bool:
        """Whether a read gets on without the transport: the core holds the
        peer's plaintext, its ending, a failure, or ciphertext it has not
        yet decrypted (a suspended handshake waits for the guest instead)."""
        return not self.core.wants_ciphertext() and not self.suspended

    def error_message(self) -> str:
        """What the guest is told of the failure (there must be one)."""
        assert self.failure is not None, "error_message() of a session that has not failed"
        return stream_failure(self.failure.error).message

    def handshake_future(self, reached: Callable[[], bool], value: Callable[[], object], *,
                         on_failure: Callable[[], None] | None = None,
                         on_drop: Callable[[], None] | None = None) -> Future:
        """A future for the handshake getting as far as `reached()` says:
        ready with `value()` then, or failed with why the session failed
        first (after `on_failure()`)."""
        def settle() -> Ready | Failed | None:
            self.pump()
            if self.broken:
                if on_failure is not None:
                    on_failure()
                return Failed(self.error_message())
            return Ready(value()) if reached() else None
        return Future(settle, lambda: self.wait_spec(deadline=True), on_drop)

    def close(self) -> None:
        """Send what is queued (close_notify included) as the transport's
        budget allows, then release the transport. Never blocks: what does
        not fit now is delivered by the context's lingering work."""
        if self.closed:
            return
        self.closed = True
        if self._resumption is not None:
            self._resumption.keep(self.core)
        goodbye = _Goodbye(self)
        if not goodbye.ready():
            self._linger(goodbye)


def open_session(ctx: WasiCtx, transport_in: InputStream, transport_out: OutputStream,
                 choose: ContextSource, *, server_name: str | None = None,
                 run_until: Point = Point.DONE) -> TlsSession:
    """A session for a guest (a client for `server_name`, a server without
    one): the host's handshake timeout, the store's clock, its lingering
    work, the server names OpenSSL already took for it (asked once per name
    for each guest), and for a client with resumption on, its sessions.
    Pumped once, so a running handshake sends at once. ``ValueError`` for a
    server name OpenSSL refuses."""
    policy = ctx.config.tls
    resumption = (ctx.tls.sessions.resumption(server_name, transport_in.peer_address())
                  if server_name is not None and policy.resume_sessions else None)
    session = TlsSession(choose, transport_in, transport_out, server_name=server_name,
                         run_until=run_until, now_ns=ctx.now_ns,
                         handshake_timeout_s=policy.handshake_timeout,
                         linger=ctx.linger,
                         name_accepted=server_name in ctx.tls.accepted_server_names,
                         resumption=resumption)
    if server_name is not None:
        ctx.tls.accepted(server_name)
    session.pump()
    return session


class AlertSent:
    """Ready once an aborted session's alert has left for the peer: handed to
    the transport and flushed there (or the transport failed)."""

    def __init__(self, session: TlsSession):
        self.session = session
        self.flush_requested = False

    def ready(self) -> bool:
        session = self.session
        if not session._send_ciphertext():
            return True
        if session.outgoing:
            return False
        try:
            if not self.flush_requested:
                self.flush_requested = True
                session.transport_out.flush()
            return session.transport_out.check_write() > 0
        except (StreamClosed, StreamFailed):
            return True

    def wait_on(self) -> WaitSpec:
        return self.session.transport_out.wait_on()


class _Goodbye:
    """Lingering work: the rest of a closed session's ciphertext, then the
    transport's release. Finished (`ready`) once both are done."""

    def __init__(self, session: TlsSession):
        self.session = session
        self.released = False

    def ready(self) -> bool:
        if not self.released:
            session = self.session
            if session._send_ciphertext() and session.outgoing:
                return False
            self.close()
        return True

    def wait_on(self) -> WaitSpec:
        return self.session.transport_out.wait_on()

    def close(self) -> None:
        if not self.released:
            self.released = True
            self.session.transport_in.close()
            self.session.transport_out.close()


class TlsInput(InputStream):
    def __init__(self, session: TlsSession):
        self.session = session
        self.ended = False

    def read(self, max_bytes: int) -> bytes:
        if self.ended:
            raise StreamClosed()
        if max_bytes == 0:
            return b""
        try:
            data = self.session.read(max_bytes)
        except (TlsFailure, StreamFailed) as error:
            # Truncation is reported once; the stream is closed after it.
            self.ended = True
            raise stream_failure(error) from None
        if data is None:
            return b""
        if data == b"":
            self.ended = True
            raise StreamClosed()
        return data

    def ready(self) -> bool:
        return self.ended or self.session.read_ready()

    def wait_on(self) -> WaitSpec:
        session = self.session
        spec = session.wait_spec(deadline=False)
        if session.input_in_hand():
            # Due now. `ready()` said no, but a TLS connection nested in
            # this one (this stream is its transport) may since have sent
            # through it, and this session pulled in the peer's answer: no
            # fd announces bytes already taken off the socket.
            return WaitSpec(fds=spec.fds, deadline_ns=session.now_ns())
        return spec


class TlsOutput(OutputStream):
    def __init__(self, session: TlsSession):
        self.session = session
        self.closed = False
        self.flushing = False

    def _check(self) -> None:
        if self.closed:
            raise StreamClosed()
        failure = self.session.failure
        if failure is not None:
            raise stream_failure(failure.error)

    def check_write(self) -> int:
        self._check()
        session = self.session
        session.pump()
        self._check()
        if self.flushing:
            # Done only when our queue is empty and the transport has sent
            # everything it was handed (its own flush covers all of it).
            if session.outgoing:
                return 0
            try:
                session.transport_out.flush()
                if session.transport_out.check_write() == 0:
                    return 0
            except (StreamClosed, StreamFailed):
                session.pump()
                self._check()
            self.flushing = False
        return max(0, OUTPUT_BUDGET - len(session.outgoing))

    def write(self, data: bytes) -> None:
        self._check()
        try:
            self.session.write(data)
        except TlsFailure as error:
            raise stream_failure(error) from None

    def flush(self) -> None:
        self._check()
        self.session.pump()
        self.flushing = True

    def wait_on(self) -> WaitSpec:
        return self.session.wait_spec(deadline=False)

    def close_notify(self) -> None:
        """Queue close_notify once; from now on the guest sees a closed output."""
        if not self.closed:
            self.closed = True
            self.session.close_sending()

    def close(self) -> None:
        """Dropping the stream ends the sending side gracefully: close_notify,
        the only way to say goodbye through the full draft (it has no call
        for it) and harmless after the upstream client's `close-output`."""
        self.close_notify()
