"""The role-neutral glue between a sans-IO TLS core and the guest's streams.

Both TLS interfaces (the upstream `wasi:tls/types` client and the full
`wasi-tls-host:tls/tls` draft) are thin tables over what is here:

* `TlsSession` owns a `tls.core.TlsCore` and the two transport streams
  under it (TCP, a pipe, another TLS stream: anything in `runtime.streams`).
  Its single `pump()` moves ciphertext between them without blocking: it
  pushes queued ciphertext out as far as the transport's `check-write`
  allows, reads transport bytes only when the core is starved, and drives the
  handshake. Every guest-visible operation calls `pump()`, so a guest that
  only calls `get` between polls still makes progress, and every pollable's
  `wait_on()` names exactly the transport readiness `pump()` needs. A
  suspended handshake makes the core hold its bytes, so the pump moves
  nothing in either direction until the guest resumes it.
* `TlsInput` / `TlsOutput` are the plaintext streams the guest reads and
  writes; `stream_failure` is the one mapping from TLS errors to stream errors.
* `handshake_future` is the `runtime.futures.Future` for the handshake
  getting as far as a step asks.

The handshake deadline covers each stretch in which the host waits for the
peer: it restarts whenever the guest resumes a suspended handshake.
"""

from __future__ import annotations

from collections.abc import Callable

from ..runtime.futures import Failed, Future, Ready
from ..runtime.poll import WaitSpec
from ..runtime.streams import OUTPUT_BUDGET, InputStream, OutputStream, StreamClosed, StreamFailed
from ..tls.core import CoreState, Point, TlsCore
from ..tls.errors import ErrorKind, TlsFailure

#: Most transport bytes one pump step reads.
TRANSPORT_READ = 64 * 1024
NS_PER_S = 1_000_000_000


def stream_failure(error: TlsFailure | StreamFailed) -> StreamFailed:
    """The stream error a guest sees for a failed TLS connection."""
    if isinstance(error, StreamFailed):
        return StreamFailed(f"transport failed: {error.message}")
    return StreamFailed(str(error))


class TlsSession:
    """A TLS connection glued to its transport streams.

    `failure` is fatal (a TLS error, the transport's input failing, or its
    output failing before the handshake is done). A transport write failure
    after the handshake is kept apart in `write_failure`, so that what the
    peer already sent (say, an early error response) can still be read.
    """

    def __init__(self, core: TlsCore, transport_in: InputStream,
                 transport_out: OutputStream, *, now_ns: Callable[[], int],
                 handshake_timeout_s: float, peer: str,
                 linger: Callable[[object], None]):
        self.core = core
        self.transport_in = transport_in
        self.transport_out = transport_out
        self.now_ns = now_ns
        self.handshake_timeout_ns = int(handshake_timeout_s * NS_PER_S)
        self.deadline_ns = now_ns() + self.handshake_timeout_ns
        #: Who is on the other end, for messages ("server name: example.com").
        self.peer = peer
        self._linger = linger
        self.outgoing = bytearray()
        self.failure: TlsFailure | StreamFailed | None = None
        self.write_failure: StreamFailed | None = None
        self.closed = False

    @property
    def handshake_done(self) -> bool:
        return self.core.handshake_complete

    @property
    def suspended(self) -> bool:
        return self.core.state is CoreState.SUSPENDED

    def resume(self, until: Point) -> None:
        """Let the handshake run on to `until`; the peer gets a fresh deadline."""
        if self.failure is None:
            self.deadline_ns = self.now_ns() + self.handshake_timeout_ns
            self.core.resume(until)
        self.pump()

    def fail(self, error: TlsFailure) -> None:
        """Break the session with an error found by an interface (a late answer)."""
        self.core.fail(error)
        if self.failure is None:
            self.failure = error
        self.pump()

    def abort(self) -> None:
        """Abandon the handshake: the core's alert replaces anything it held."""
        self.core.abort()
        if self.failure is None:
            self.failure = self.core.error
        self.pump()

    # -- the pump -----------------------------------------------------------
    def pump(self) -> None:
        """Make every bit of progress possible right now, without blocking."""
        if self.failure is not None:
            self._send_ciphertext()
            return
        try:
            if not self.handshake_done:
                self._step_handshake()
            self._send_ciphertext()
            if self.core.wants_ciphertext():
                self._receive_ciphertext()
                if not self.handshake_done:
                    self._step_handshake()
                self._send_ciphertext()
        except (TlsFailure, StreamFailed) as error:
            self.failure = error
            self._send_ciphertext()

    def _step_handshake(self) -> None:
        if (not self.core.handshake() and not self.suspended
                and self.now_ns() >= self.deadline_ns):
            error = TlsFailure(f"handshake timed out ({self.peer})", kind=ErrorKind.TIMEOUT)
            self.core.fail(error)
            raise error

    def _send_ciphertext(self) -> None:
        """Hand queued ciphertext to the transport as far as it takes it.

        `check_write` is called even with nothing queued here: it is what
        lets a buffering transport (TCP) push out what it still holds.
        """
        self.outgoing += self.core.ciphertext_to_send()
        if self.write_failure is not None:
            return
        try:
            permit = self.transport_out.check_write()
            if permit and self.outgoing:
                chunk = bytes(self.outgoing[:permit])
                self.transport_out.write(chunk)
                del self.outgoing[:len(chunk)]
        except (StreamClosed, StreamFailed) as error:
            self.write_failure = (error if isinstance(error, StreamFailed) else
                                  StreamFailed("the transport closed for writing"))
            if not self.handshake_done and self.failure is None:
                self.failure = self.write_failure

    def _receive_ciphertext(self) -> None:
        try:
            data = self.transport_in.read(TRANSPORT_READ)
        except StreamClosed:
            self.core.receive_eof()
            return
        except StreamFailed as error:
            if not self.handshake_done and error.network_code == "connection-reset":
                raise TlsFailure("peer closed the connection during the handshake "
                               "(connection reset)", kind=ErrorKind.EOF) from None
            raise
        self.core.receive_ciphertext(data)

    # -- readiness ------------------------------------------------------------
    def wait_spec(self, *, deadline: bool) -> WaitSpec:
        """What could unblock the pump: transport input, transport output, time."""
        fds = self.transport_out.wait_on().fds
        if self.core.wants_ciphertext():
            fds += self.transport_in.wait_on().fds
        running = deadline and not self.suspended and not self.handshake_done
        return WaitSpec(fds=fds, deadline_ns=self.deadline_ns if running else None)

    def error(self) -> TlsFailure | StreamFailed | None:
        return self.failure or self.write_failure

    def error_message(self) -> str:
        """What the guest is told of a failure (there must be one)."""
        return stream_failure(self.error()).message  # type: ignore[arg-type]

    def handshake_future(self, reached: Callable[[], bool], value: Callable[[], object], *,
                         on_failure: Callable[[], None] | None = None,
                         on_drop: Callable[[], None] | None = None) -> Future:
        """A future for the handshake getting as far as `reached()` says:
        ready with `value()` then, or failed with why the session failed
        first (after `on_failure()`)."""
        def settle() -> Ready | Failed | None:
            self.pump()
            if self.failure is not None:
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
        goodbye = _Goodbye(self)
        if not goodbye.ready():
            self._linger(goodbye)


def open_session(ctx, core: TlsCore, transport_in: InputStream,
                 transport_out: OutputStream, peer: str) -> TlsSession:
    """A session for a guest: the host's handshake timeout, the store's clock,
    its lingering work. Pumped once, so a running handshake sends at once."""
    session = TlsSession(core, transport_in, transport_out, now_ns=ctx.now_ns,
                         handshake_timeout_s=ctx.config.tls.handshake_timeout, peer=peer,
                         linger=ctx.linger)
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
        session.pump()
        if session.write_failure is not None:
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
            session._send_ciphertext()
            if session.outgoing and session.write_failure is None:
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
        session = self.session
        session.pump()
        try:
            data = session.core.read(max_bytes)
            if data is None:
                session.pump()
                data = session.core.read(max_bytes)
        except TlsFailure as error:
            # Truncation is reported once; the stream is closed after it.
            self.ended = True
            raise stream_failure(error) from None
        if data is None:
            if isinstance(session.failure, StreamFailed):
                self.ended = True
                raise stream_failure(session.failure)
            return b""
        if data == b"":
            self.ended = True
            raise StreamClosed()
        return data

    def ready(self) -> bool:
        self.session.pump()
        return self.ended or self.session.failure is not None or self.session.core.read_ready()

    def wait_on(self) -> WaitSpec:
        return self.session.wait_spec(deadline=False)


class TlsOutput(OutputStream):
    def __init__(self, session: TlsSession):
        self.session = session
        self.closed = False
        self.flushing = False

    def _check(self) -> None:
        if self.closed:
            raise StreamClosed()
        failure = self.session.error()
        if failure is not None:
            raise stream_failure(failure)

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
            self.session.core.write(data)
        except TlsFailure as error:
            raise stream_failure(error) from None
        self.session.pump()

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
            self.session.core.close()
            self.session.pump()

    def close(self) -> None:
        """Dropping the stream ends the sending side gracefully: close_notify,
        the only way to say goodbye through the full draft (it has no call
        for it) and harmless after the upstream client's `close-output`."""
        self.close_notify()
