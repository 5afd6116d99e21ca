"""wasi-tls-host:tls/tls@0.1.0: TLS clients and servers with guest-driven handshakes.

A table over `session`, like the upstream client next door. A connection
resource holds the transport streams until `connect`/`accept` starts a
`TlsSession` whose core is suspended at `Point.START`; each handshake step
resumes it to its point and returns a `Future` that settles when the core
gets there. The context is chosen when the core first needs one (a client's
first resume, a server's resume past the ClientHello), from what the guest
configured and the host's `TlsPolicy`: which identities match the client's
server name and signature algorithms, which ALPN ids, whether and when a
client certificate is asked for.

Resource lifetimes follow the draft: a handshake is a child of its
connection; the futures of the optional steps, and the `client-hello` and
`client-identity-request` they hand out, are children of the handshake (so a
guest drops them before `finish`); `finish`'s future, `abort`'s pollable and
the plaintext streams are children of the connection.
"""

from __future__ import annotations

from collections.abc import Callable

from ..runtime.calls import Interface
from ..runtime.errors import ErrorValue
from ..runtime.futures import Failed, Future, Ready, subscribe_future
from ..runtime.poll import Pollable
from ..runtime.resources import Res
from ..runtime.streams import InputStream, OutputStream
from ..runtime.values import Child, Err, Ok
from ..tls.client_hello import ClientHello
from ..tls.core import Point, TlsCore
from ..tls.errors import ErrorKind, TlsFailure
from ..tls.identity import (
    IdentityError,
    PrivateIdentity,
    PublicIdentity,
    choose_identities,
)
from ..tls.policy import ClientAuth
from .session import AlertSent, TlsInput, TlsOutput, TlsSession, open_session

interface = Interface("wasi-tls-host:tls/tls@0.1.0")
for _name, _res in (
        ("public-identity", Res.TLS_PUBLIC_IDENTITY),
        ("private-identity", Res.TLS_PRIVATE_IDENTITY),
        ("client-connection", Res.TLS_CLIENT_CONNECTION),
        ("client-handshake", Res.TLS_CLIENT_HANDSHAKE),
        ("server-connection", Res.TLS_SERVER_CONNECTION),
        ("server-handshake", Res.TLS_SERVER_HANDSHAKE),
        ("client-hello", Res.TLS_CLIENT_HELLO),
        ("client-identity-request", Res.TLS_CLIENT_IDENTITY_REQUEST),
        ("future-streams", Res.TLS_FUTURE_STREAMS),
        ("future-client-hello", Res.TLS_FUTURE_CLIENT_HELLO),
        ("future-public-identity", Res.TLS_FUTURE_PUBLIC_IDENTITY),
        ("future-client-identity-request", Res.TLS_FUTURE_CLIENT_IDENTITY_REQUEST),
        ("input-stream", Res.INPUT_STREAM), ("output-stream", Res.OUTPUT_STREAM),
        ("pollable", Res.POLLABLE)):
    interface.resource(_name, _res)

_TLS_1_3 = 0x0304


class IdentityHandle:
    """One guest handle on a private identity (many handles may share one)."""

    def __init__(self, identity: PrivateIdentity):
        self.identity = identity


def _alpn_ids(ids: list[bytes]) -> list[str]:
    for alpn_id in ids:
        if not 1 <= len(alpn_id) <= 255 or not alpn_id.isascii():
            raise ErrorValue()  # Python's ssl takes 1 to 255 ASCII bytes per id
    return [alpn_id.decode("ascii") for alpn_id in ids]


def _identity_sent(core: TlsCore,
                   candidates: list[PrivateIdentity]) -> PrivateIdentity | None:
    """Which of `candidates` went out in this side's Certificate message."""
    message = core.own_certificate_message
    if message is None:
        return None
    return next((identity for identity in candidates
                 if identity.public.chain[0] in message), None)


class Connection:
    """What the client and server connection resources share."""

    def __init__(self, transport_in: InputStream, transport_out: OutputStream):
        self.transport_in = transport_in
        self.transport_out = transport_out
        self.session: TlsSession | None = None
        self.input: TlsInput | None = None
        self.output: TlsOutput | None = None

    def start(self, ctx, core: TlsCore, peer: str) -> TlsSession:
        self.session = open_session(ctx, core, self.transport_in, self.transport_out, peer)
        self.input = TlsInput(self.session)
        self.output = TlsOutput(self.session)
        return self.session

    @property
    def core(self) -> TlsCore | None:
        return self.session.core if self.session is not None else None

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
        else:
            self.transport_in.close()
            self.transport_out.close()


class Handshake:
    """What the client and server handshake resources share: the steps taken,
    and the futures that settle when the core reaches a point."""

    def __init__(self, connection: Connection):
        self.connection = connection
        self.alpn_ids: list[str] = []
        self.steps: set[Point] = set()

    @property
    def session(self) -> TlsSession:
        return self.connection.session  # type: ignore[return-value]

    def configure(self, apply: Callable[[], None]) -> None:
        if self.session.core.started:
            raise ErrorValue()  # only while the handshake has not been resumed past its start
        apply()

    def step(self, point: Point, too_late: bool,
             value: Callable[[], object]) -> Child:
        """Resume to `point`; a future (child of the handshake) for `value()` there."""
        if point in self.steps or too_late:
            raise ErrorValue()
        self.steps.add(point)
        session = self.session
        session.resume(point)
        return Child(session.handshake_future(lambda: session.core.reached(point), value), self)

    def finish(self) -> Child:
        connection, session = self.connection, self.session
        session.resume(Point.DONE)
        return Child(session.handshake_future(
            lambda: session.handshake_done,
            lambda: (Child(connection.input, connection), Child(connection.output, connection))),
            connection)

    def abort(self) -> Child:
        self.session.abort()
        return Child(Pollable(AlertSent(self.session)), self.connection)


# -- identities -------------------------------------------------------------------

@interface.func("[method]public-identity.export-X509-chain")
def export_x509_chain(ctx, identity: PublicIdentity) -> list[bytes]:
    return list(identity.chain)


@interface.func("[static]private-identity.parse")
def parse_identity(ctx, private_key: bytes, chain: list[bytes]) -> IdentityHandle:
    try:
        return IdentityHandle(PrivateIdentity.parse(private_key, chain))
    except IdentityError:
        raise ErrorValue() from None


@interface.func("[method]private-identity.public-identity")
def public_identity(ctx, handle: IdentityHandle) -> PublicIdentity:
    return PublicIdentity(handle.identity.public.chain)


# -- clients ----------------------------------------------------------------------

class ClientConnection(Connection):
    def __init__(self, transport_in: InputStream, transport_out: OutputStream):
        super().__init__(transport_in, transport_out)
        self.server_name: str | None = None
        self.identity: PrivateIdentity | None = None  # what `respond` chose


class ClientHandshake(Handshake):
    def context(self, ctx, identity: PrivateIdentity | None = None):
        return ctx.config.tls.client_context(alpn_ids=self.alpn_ids, identity=identity,
                                             post_handshake_auth=True)


class ClientIdentityRequest:
    def __init__(self, handshake: ClientHandshake):
        self.handshake = handshake


@interface.func("[constructor]client-connection")
def new_client_connection(ctx, transport_in: InputStream,
                          transport_out: OutputStream) -> ClientConnection:
    return ClientConnection(transport_in, transport_out)


@interface.func("[method]client-connection.connect")
def connect(ctx, connection: ClientConnection, server_name: str):
    if connection.session is not None:
        return Err()  # at most once
    handshake = ClientHandshake(connection)
    try:
        core = TlsCore(lambda hello: handshake.context(ctx),
                             server_hostname=server_name, run_until=Point.START)
    except ValueError:
        return Err()  # a name the TLS library refuses
    connection.start(ctx, core, f"server name: {server_name}")
    connection.server_name = server_name
    return Ok(Child(handshake, connection))


@interface.func("[method]client-connection.server-name")
def client_server_name(ctx, connection: ClientConnection) -> str | None:
    return connection.server_name


@interface.func("[method]client-connection.alpn-id")
def client_alpn_id(ctx, connection: Connection) -> bytes | None:
    return _alpn_id(connection)


@interface.func("[method]client-connection.client-identity")
def client_identity_sent(ctx, connection: ClientConnection) -> IdentityHandle | None:
    core = connection.core
    if core is None or connection.identity is None:
        return None
    sent = _identity_sent(core, [connection.identity])
    return IdentityHandle(sent) if sent is not None else None


@interface.func("[method]client-connection.server-identity")
def client_server_identity(ctx, connection: ClientConnection) -> PublicIdentity | None:
    core = connection.core
    if core is None or not core.reached(Point.SERVER_CERTIFICATE):
        return None
    return PublicIdentity(core.peer_chain())


@interface.func("[method]client-handshake.configure-alpn-ids")
def client_configure_alpn_ids(ctx, handshake: ClientHandshake, ids: list[bytes]) -> None:
    handshake.configure(lambda: setattr(handshake, "alpn_ids", _alpn_ids(ids)))


@interface.func("[method]client-handshake.verify-server-identity")
def verify_server_identity(ctx, handshake: ClientHandshake) -> Child:
    core = handshake.session.core
    return handshake.step(Point.SERVER_CERTIFICATE, core.reached(Point.SERVER_CERTIFICATE),
                          lambda: PublicIdentity(core.peer_chain()))


@interface.func("[method]client-handshake.receive-client-identity-request")
def receive_client_identity_request(ctx, handshake: ClientHandshake) -> Child:
    core = handshake.session.core
    return handshake.step(
        Point.CLIENT_IDENTITY_REQUEST, core.identity_committed or core.reached(Point.DONE),
        lambda: (Child(ClientIdentityRequest(handshake), handshake)
                 if core.certificate_requested else None))


@interface.func("[static]client-handshake.finish")
def client_finish(ctx, handshake: ClientHandshake) -> Child:
    return handshake.finish()


@interface.func("[static]client-handshake.abort")
def client_abort(ctx, handshake: ClientHandshake) -> Child:
    return handshake.abort()


@interface.func("[static]client-identity-request.respond")
def respond(ctx, request: ClientIdentityRequest, identities: list[IdentityHandle]) -> None:
    if not identities:
        return
    handshake = request.handshake
    identity = identities[0].identity
    session = handshake.session
    try:
        session.core.use_context(handshake.context(ctx, identity))
    except TlsFailure as error:
        session.fail(error)
        return
    except ValueError as error:  # the context cannot be built now (a CA file gone since start-up)
        session.fail(TlsFailure(str(error), kind=ErrorKind.CONFIGURATION))
        return
    handshake.connection.identity = identity  # type: ignore[attr-defined]


# -- servers ----------------------------------------------------------------------

class ServerConnection(Connection):
    def __init__(self, transport_in: InputStream, transport_out: OutputStream):
        super().__init__(transport_in, transport_out)
        self.offered: list[PrivateIdentity] = []  # the identities loaded for the handshake
        self.client_auth = ClientAuth.NONE


class ServerHandshake(Handshake):
    def __init__(self, connection: ServerConnection):
        super().__init__(connection)
        self.identities: list[PrivateIdentity] = []

    def context(self, ctx, hello: ClientHello | None):
        """Chosen once the ClientHello is known (None when it could not be read)."""
        connection: ServerConnection = self.connection  # type: ignore[assignment]
        if not self.identities:
            raise TlsFailure("the server handshake has no identity: call "
                           "configure-server-identities first", kind=ErrorKind.CONFIGURATION)
        if Point.CLIENT_CERTIFICATE in self.steps:
            connection.client_auth = ClientAuth.IN_HANDSHAKE
        elif hello is not None and _TLS_1_3 in hello.versions and hello.post_handshake_auth:
            connection.client_auth = ClientAuth.POST_HANDSHAKE
        connection.offered = choose_identities(
            self.identities, hello.server_name if hello else None,
            hello.signature_algorithms if hello else ())
        return ctx.config.tls.server_context(connection.offered, alpn_ids=self.alpn_ids,
                                             client_auth=connection.client_auth)


@interface.func("[constructor]server-connection")
def new_server_connection(ctx, transport_in: InputStream,
                          transport_out: OutputStream) -> ServerConnection:
    return ServerConnection(transport_in, transport_out)


@interface.func("[method]server-connection.accept")
def accept(ctx, connection: ServerConnection) -> Child:
    if connection.session is not None:
        raise ErrorValue()  # at most once
    handshake = ServerHandshake(connection)
    core = TlsCore(lambda hello: handshake.context(ctx, hello),
                         server_side=True, run_until=Point.START)
    connection.start(ctx, core, "the client")
    return Child(handshake, connection)


@interface.func("[method]server-connection.request-client-identity")
def request_client_identity_after(ctx, connection: ServerConnection) -> Child:
    session = connection.session
    if (session is None or not session.handshake_done
            or connection.client_auth is not ClientAuth.POST_HANDSHAKE
            or session.core.post_handshake_request):
        raise ErrorValue()
    try:
        session.core.request_client_certificate()
    except TlsFailure:
        raise ErrorValue() from None
    session.pump()
    core = session.core

    def settle() -> Ready | Failed | None:
        session.pump()
        core.read_ready()  # the answer arrives with the client's next records
        if not core.post_handshake_request:
            return Ready(_peer_identity(core))
        if session.failure is not None or core.error is not None:
            return Failed(str(core.error or session.error_message()))
        return None
    return Child(Future(settle, lambda: session.wait_spec(deadline=False)), connection)


@interface.func("[method]server-connection.server-name")
def server_server_name(ctx, connection: ServerConnection) -> str | None:
    core = connection.core
    hello = core.client_hello if core is not None else None
    return hello.server_name if hello is not None else None


@interface.func("[method]server-connection.alpn-id")
def server_alpn_id(ctx, connection: Connection) -> bytes | None:
    return _alpn_id(connection)


@interface.func("[method]server-connection.client-identity")
def server_client_identity(ctx, connection: ServerConnection) -> PublicIdentity | None:
    core = connection.core
    if core is None or not core.reached(Point.CLIENT_CERTIFICATE):
        return None
    return _peer_identity(core)


@interface.func("[method]server-connection.server-identity")
def server_identity_sent(ctx, connection: ServerConnection) -> IdentityHandle | None:
    core = connection.core
    sent = _identity_sent(core, connection.offered) if core is not None else None
    return IdentityHandle(sent) if sent is not None else None


@interface.func("[method]server-handshake.configure-alpn-ids")
def server_configure_alpn_ids(ctx, handshake: ServerHandshake, ids: list[bytes]) -> None:
    handshake.configure(lambda: setattr(handshake, "alpn_ids", _alpn_ids(ids)))


@interface.func("[method]server-handshake.configure-server-identities")
def configure_server_identities(ctx, handshake: ServerHandshake,
                                identities: list[IdentityHandle]) -> None:
    if not identities:
        raise ErrorValue()
    handshake.configure(lambda: setattr(
        handshake, "identities", [handle.identity for handle in identities]))


@interface.func("[method]server-handshake.receive-client-hello")
def receive_client_hello(ctx, handshake: ServerHandshake) -> Child:
    core = handshake.session.core
    return handshake.step(Point.CLIENT_HELLO, core.started,
                          lambda: Child(core.client_hello, handshake))


@interface.func("[method]server-handshake.request-client-identity")
def request_client_identity(ctx, handshake: ServerHandshake) -> Child:
    core = handshake.session.core

    return handshake.step(Point.CLIENT_CERTIFICATE, core.started, lambda: _peer_identity(core))


@interface.func("[static]server-handshake.finish")
def server_finish(ctx, handshake: ServerHandshake) -> Child:
    return handshake.finish()


@interface.func("[static]server-handshake.abort")
def server_abort(ctx, handshake: ServerHandshake) -> Child:
    return handshake.abort()


@interface.func("[method]client-hello.server-name")
def hello_server_name(ctx, hello: ClientHello) -> str | None:
    return hello.server_name


@interface.func("[method]client-hello.alpn-ids")
def hello_alpn_ids(ctx, hello: ClientHello) -> list[bytes]:
    return list(hello.alpn_ids)


@interface.func("[method]client-hello.cipher-suites")
def hello_cipher_suites(ctx, hello: ClientHello) -> list[int]:
    return list(hello.cipher_suites)


# -- session facts both roles report ------------------------------------------------

def _peer_identity(core: TlsCore) -> PublicIdentity | None:
    """The chain the peer sent, if it sent one (a client may send none)."""
    chain = core.peer_chain()
    return PublicIdentity(chain) if chain else None


def _alpn_id(connection: Connection) -> bytes | None:
    core = connection.core
    selected = core.alpn_protocol() if core is not None else None
    return selected.encode() if selected else None


def _session_fact(read: Callable[[TlsCore], object]) -> Callable:
    def getter(ctx, connection: Connection):
        core = connection.core
        return read(core) if core is not None else None
    return getter


for _role in ("client", "server"):
    interface.func(f"[method]{_role}-connection.protocol-version")(
        _session_fact(TlsCore.protocol_version))
    interface.func(f"[method]{_role}-connection.cipher-suite")(
        _session_fact(TlsCore.cipher_suite))


# -- futures ------------------------------------------------------------------------

def _future_get(ctx, future: Future):
    """`get` for every future here; the draft's failures carry nothing."""
    return future.get()


for _future in ("future-streams", "future-client-hello", "future-public-identity",
                "future-client-identity-request"):
    interface.func(f"[method]{_future}.subscribe")(subscribe_future)
    interface.func(f"[method]{_future}.get")(_future_get)
