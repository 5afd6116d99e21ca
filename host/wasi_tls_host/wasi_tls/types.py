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

from ..io.error import IoError
from ..runtime.calls import Interface
from ..runtime.poll import Pollable, WaitSpec, wait_any
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
#: How long dropping a connection may wait to deliver what is queued.
CLOSE_GRACE_NS = 5_000_000_000


class TlsSession:
    """A TLS connection glued to its transport streams."""

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
        self.transport_closed = False

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
        self.outgoing += self.core.ciphertext_to_send()
        if not self.outgoing or self.transport_closed:
            return
        try:
            permit = self.transport_out.check_write()
            if permit:
                chunk = bytes(self.outgoing[:permit])
                self.transport_out.write(chunk)
                del self.outgoing[:len(chunk)]
                self.transport_out.flush()
        except StreamClosed:
            self.transport_closed = True
            if self.failure is None:
                self.failure = StreamFailed("the transport closed while TLS data was pending")
        except StreamFailed as error:
            self.transport_closed = True
            if self.failure is None:
                self.failure = error

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
        fds: list[tuple[int, int]] = []
        if self.core.wants_ciphertext():
            fds += self.transport_in.wait_on().fds
        if self.outgoing:
            fds += self.transport_out.wait_on().fds
        return WaitSpec(fds=tuple(fds),
                        deadline_ns=self.handshake_deadline_ns if deadline else None)

    def error_message(self) -> str:
        failure = self.failure
        if isinstance(failure, TLSError):
            return str(failure)
        return f"transport failed: {failure.message}" if failure else "unknown failure"

    def close(self) -> None:
        """Deliver queued ciphertext (close_notify included, bounded wait), then
        release the transport."""
        deadline = self.now_ns() + CLOSE_GRACE_NS
        self._send_ciphertext()
        while self.outgoing and not self.transport_closed and self.now_ns() < deadline:
            wait_any(self.now_ns, [_TransportWritable(self.transport_out, self.now_ns, deadline)])
            self._send_ciphertext()
        self.transport_in.close()
        self.transport_out.close()


class _TransportWritable:
    """Ready when the transport takes bytes again, or at the deadline."""

    def __init__(self, transport_out: OutputStream, now_ns, deadline_ns: int):
        self.transport_out = transport_out
        self.now_ns = now_ns
        self.deadline_ns = deadline_ns

    def ready(self) -> bool:
        return self.transport_out.ready() or self.now_ns() >= self.deadline_ns

    def wait_on(self) -> WaitSpec:
        return WaitSpec(fds=self.transport_out.wait_on().fds, deadline_ns=self.deadline_ns)


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
    """Ready once the handshake has finished either way; `get` hands out the result once."""

    def __init__(self, session: TlsSession):
        self.session = session
        self.taken = False

    def settled(self) -> bool:
        return self.session.handshake_done or self.session.failure is not None

    def ready(self) -> bool:
        self.session.pump()
        return self.settled()

    def wait_on(self) -> WaitSpec:
        return self.session.wait_spec(deadline=True)

    def close(self) -> None:
        if not self.taken:
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
        if self.session.failure is not None:
            raise StreamFailed(self.session.error_message())

    def check_write(self) -> int:
        self._check()
        self.session.pump()
        self._check()
        pending = len(self.session.outgoing)
        if self.flushing and pending:
            return 0
        self.flushing = False
        return max(0, OUTPUT_BUDGET - pending)

    def write(self, data: bytes) -> None:
        self._check()
        try:
            self.session.core.write(data)
        except TLSError as error:
            raise StreamFailed(str(error)) from None
        self.session.pump()

    def flush(self) -> None:
        self._check()
        self.session.pump()
        self.flushing = bool(self.session.outgoing)

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
    core = TLSConnection(settings.client_context(), server_hostname=handshake.server_name)
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
    if session.failure is not None:
        session.close()
        return Ok(Err(IoError(session.error_message())))
    connection = ClientConnection(session)
    return Ok(Ok((connection, Child(connection.input, connection),
                  Child(connection.output, connection))))

