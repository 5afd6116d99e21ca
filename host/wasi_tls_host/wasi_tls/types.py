"""wasi:tls/types@0.2.0-draft: TLS clients over any pair of host streams.

Theory of operation: `client-handshake` takes the guest's transport streams
(TCP, a pipe, another TLS stream: anything in `runtime.streams`). `finish`
wraps them in a `TlsSession`, whose single `pump()` moves ciphertext between
the sans-IO core (`tls.core`) and the transport without blocking: it pushes
queued ciphertext out as far as the transport's `check-write` allows, reads
transport bytes only when the core is starved, and drives the handshake.
Every guest-visible operation calls `pump()`, so a guest that only loops on
`future-client-streams.get` between polls still makes progress, and every
pollable's `wait_on()` names exactly the transport readiness `pump()` needs.

Trust is the host's: the `ssl.SSLContext` comes from the host config
(certifi, `--ca-file`, `--system-trust`), verification is always on and
TLS 1.2 is the floor. The handshake has a deadline.
"""

from __future__ import annotations

import ssl

from ..io.error import IoError
from ..runtime.calls import Interface
from ..runtime.poll import NEVER, Pollable, WaitSpec
from ..runtime.resources import Res
from ..runtime.streams import OUTPUT_BUDGET, InputStream, OutputStream, StreamClosed, StreamFailed
from ..runtime.values import Child, Err, Ok
from ..tls.core import TLSConnection, TLSError

interface = Interface("wasi:tls/types@0.2.0-draft")
for _name, _res in (("client-handshake", Res.CLIENT_HANDSHAKE),
                    ("client-connection", Res.CLIENT_CONNECTION),
                    ("future-client-streams", Res.FUTURE_CLIENT_STREAMS),
                    ("input-stream", Res.INPUT_STREAM), ("output-stream", Res.OUTPUT_STREAM),
                    ("pollable", Res.POLLABLE), ("io-error", Res.IO_ERROR)):
    interface.resource(_name, _res)

#: Most transport bytes one pump step reads.
TRANSPORT_READ = 64 * 1024


class TlsSession:
    """A TLS connection glued to its transport streams.

    `failure` is fatal (a TLS error, the transport's input failing, or its
    output failing before the handshake is done). A transport write failure
    after the handshake is kept apart in `write_failure`, so that what the
    peer already sent (say, an early error response) can still be read.
    """

    def __init__(self, core: TLSConnection, transport_in: InputStream,
                 transport_out: OutputStream, now_ns, handshake_deadline_ns: int,
                 server_name: str):
        self.core = core
        self.transport_in = transport_in
        self.transport_out = transport_out
        self.now_ns = now_ns
        self.handshake_deadline_ns = handshake_deadline_ns
        self.server_name = server_name
        self.outgoing = bytearray()
        self.failure: TLSError | StreamFailed | None = None
        self.write_failure: StreamFailed | None = None

    @property
    def handshake_done(self) -> bool:
        return self.core.handshake_complete

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
        except (TLSError, StreamFailed) as error:
            self.failure = error
            self._send_ciphertext()

    def _step_handshake(self) -> None:
        if not self.core.handshake() and self.now_ns() >= self.handshake_deadline_ns:
            raise TLSError(f"handshake timed out (server name: {self.server_name})")

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
                raise TLSError("peer closed the connection during the handshake "
                               "(connection reset)") from None
            raise
        self.core.receive_ciphertext(data)

    # -- readiness ------------------------------------------------------------
    def wait_spec(self, *, deadline: bool) -> WaitSpec:
        """What could unblock the pump: transport input, transport output, time."""
        fds = self.transport_out.wait_on().fds
        if self.core.wants_ciphertext():
            fds += self.transport_in.wait_on().fds
        return WaitSpec(fds=fds, deadline_ns=self.handshake_deadline_ns if deadline else None)

    def error_message(self) -> str:
        failure = self.failure or self.write_failure
        if isinstance(failure, TLSError):
            return str(failure)
        return f"transport failed: {failure.message}" if failure else "unknown failure"

    def close(self) -> None:
        """Hand everything queued (close_notify included) to the transport,
        which delivers it in the background, and release the transport."""
        self.outgoing += self.core.ciphertext_to_send()
        if self.outgoing and self.write_failure is None:
            try:
                self.transport_out.write(bytes(self.outgoing))
            except (StreamClosed, StreamFailed):
                pass
            self.outgoing.clear()
        self.transport_in.close()
        self.transport_out.close()


class ClientHandshake:
    def __init__(self, server_name: str, transport_in: InputStream, transport_out: OutputStream):
        self.server_name = server_name
        self.transport_in = transport_in
        self.transport_out = transport_out

    def close(self) -> None:
        self.transport_in.close()
        self.transport_out.close()


class ClientConnection:
    def __init__(self, session: TlsSession):
        self.session = session
        self.input = TlsInput(session)
        self.output = TlsOutput(session)

    def close(self) -> None:
        self.session.close()


class FutureClientStreams:
    """Ready once the handshake has finished either way; `get` hands out the result once.

    A handshake refused before it started (e.g. an invalid server name) has
    no session, only `early_error`.
    """

    def __init__(self, session: TlsSession | None, early_error: str | None = None):
        self.session = session
        self.early_error = early_error
        self.taken = False

    def ready(self) -> bool:
        if self.session is None:
            return True
        self.session.pump()
        return self.session.handshake_done or self.session.failure is not None

    def wait_on(self) -> WaitSpec:
        return self.session.wait_spec(deadline=True) if self.session else NEVER

    def close(self) -> None:
        if self.session is not None and not self.taken:
            self.session.close()


class TlsInput(InputStream):
    def __init__(self, session: TlsSession):
        self.session = session
        self.ended = False

    def read(self, max_bytes: int) -> bytes:
        if self.ended:
            raise StreamClosed()
        session = self.session
        session.pump()
        try:
            data = session.core.read(max_bytes)
            if data is None:
                session.pump()
                data = session.core.read(max_bytes)
        except TLSError as error:
            # Truncation is reported once; the stream is closed after it.
            self.ended = True
            raise StreamFailed(str(error)) from None
        if data is None:
            if isinstance(session.failure, StreamFailed):
                self.ended = True
                raise StreamFailed(session.error_message())
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
        if self.session.failure is not None or self.session.write_failure is not None:
            raise StreamFailed(self.session.error_message())

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
        except TLSError as error:
            raise StreamFailed(str(error)) from None
        self.session.pump()

    def flush(self) -> None:
        self._check()
        session = self.session
        session.pump()
        self.flushing = True

    def wait_on(self) -> WaitSpec:
        return self.session.wait_spec(deadline=False)

    def close_notify(self) -> None:
        """Queue close_notify once; from now on the guest sees a closed output."""
        if not self.closed:
            self.closed = True
            self.session.core.close()
            self.session.pump()


# -- interface functions --------------------------------------------------------

@interface.func("[constructor]client-handshake")
def new_client_handshake(ctx, server_name: str, transport_in: InputStream,
                         transport_out: OutputStream) -> ClientHandshake:
    return ClientHandshake(server_name, transport_in, transport_out)


@interface.func("[static]client-handshake.finish")
def finish(ctx, handshake: ClientHandshake) -> FutureClientStreams:
    settings = ctx.config.tls
    try:
        core = TLSConnection(settings.client_context(), server_hostname=handshake.server_name)
    # Python refuses some names (ValueError, UnicodeError, TypeError), OpenSSL
    # others (SSLError: e.g. longer than 255 bytes): all are invalid names.
    except (ValueError, TypeError, ssl.SSLError) as error:
        handshake.close()
        return FutureClientStreams(
            None, f"invalid server name {handshake.server_name!r}: {error}")
    deadline = ctx.now_ns() + int(settings.handshake_timeout * 1_000_000_000)
    session = TlsSession(core, handshake.transport_in, handshake.transport_out,
                         ctx.now_ns, deadline, handshake.server_name)
    session.pump()
    return FutureClientStreams(session)


@interface.func("[method]client-connection.close-output")
def close_output(ctx, connection: ClientConnection) -> None:
    connection.output.close_notify()


@interface.func("[method]future-client-streams.subscribe")
def subscribe(ctx, future: FutureClientStreams) -> Child:
    return Child(Pollable(future), future)


@interface.func("[method]future-client-streams.get")
def get(ctx, future: FutureClientStreams):
    if future.taken:
        return Err()
    if not future.ready():
        return None
    future.taken = True
    session = future.session
    if session is None:
        return Ok(Err(IoError(future.early_error)))
    if session.failure is not None:
        session.close()
        return Ok(Err(IoError(session.error_message())))
    connection = ClientConnection(session)
    return Ok(Ok((connection, Child(connection.input, connection),
                  Child(connection.output, connection))))
