"""wasi-tls-host:tls/tls@0.1.0: TLS clients and servers with guest-driven handshakes.

A table over `session`, like the upstream client next door: nothing here
touches the TLS core. A connection resource holds the transport streams
until `connect`/`accept` starts a `TlsSession` suspended at `Point.START`;
each handshake step resumes it to its point and returns a `Future` that
settles when the session gets there. The context is chosen when the session
first needs one (a client's first resume, a server's resume past the
ClientHello): the guest's configuration goes to the host's `TlsPolicy`,
which decides which identities match the client's server name and
signature algorithms, which ALPN ids are acceptable, and whether and when a
client certificate is asked for.

Resource lifetimes follow the draft: a handshake is a child of its
connection; the futures of the optional steps, and the `client-hello` and
`client-identity-request` they hand out, are children of the handshake (so a
guest drops them before `finish`); `finish`'s future, `abort`'s pollable and
the plaintext streams are children of the connection.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..runtime.calls import Interface
from ..runtime.errors import ErrorValue
from ..runtime.futures import Future, subscribe_future
from ..runtime.poll import Pollable
from ..runtime.resources import Res
from ..runtime.streams import InputStream, OutputStream
from ..runtime.values import Child, Err, Ok
from ..tls.client_hello import ClientHello
from ..tls.core import Point
from ..tls.errors import ErrorKind, TlsFailure
from ..tls.policy import ContextChoice, TlsPolicy
from .session import AlertSent, ContextSource, TlsInput, TlsOutput, TlsSession, open_session

if TYPE_CHECKING:
    from ..runtime.context import WasiCtx
    from ..tls.identity import PrivateIdentity, PublicIdentity  # see parse_identity

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


class IdentityHandle:
    """One guest handle on a private identity (many handles may share one)."""

    def __init__(self, identity: PrivateIdentity):
        self.identity = identity


class Connection:
    """What the client and server connection resources share."""

    def __init__(self, transport_in: InputStream, transport_out: OutputStream):
        self.transport_in = transport_in
        self.transport_out = transport_out
        self.session: TlsSession | None = None
        self.input: TlsInput | None = None
        self.output: TlsOutput | None = None

    def start(self, ctx: WasiCtx, choose: ContextSource, *,
              server_name: str | None = None) -> TlsSession:
        """The session, suspended at its start (ValueError for a refused server name)."""
        self.session = open_session(ctx, self.transport_in, self.transport_out, choose,
                                    server_name=server_name, run_until=Point.START)
        self.input = TlsInput(self.session)
        self.output = TlsOutput(self.session)
        return self.session

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
        else:
            self.transport_in.close()
            self.transport_out.close()


class Handshake(abc.ABC):
    """What the client and server handshake resources share: the guest's
    configuration (its ALPN ids), the steps taken, the session they drive
    and the futures that settle when it reaches a point. Subclasses say
    what the policy is given to choose the context (`choose`)."""

    def __init__(self, ctx: WasiCtx, connection: Connection, *, server_name: str | None = None):
        self.connection = connection
        self.policy = ctx.config.tls
        self.alpn_ids: tuple[str, ...] = ()
        self.steps: set[Point] = set()
        self.session = connection.start(ctx, self.choose, server_name=server_name)

    @abc.abstractmethod
    def choose(self, hello: ClientHello | None) -> ContextChoice:
        """What the policy makes of the guest's configuration (and `hello`)."""

    def check_configurable(self) -> None:
        if self.session.started:
            raise ErrorValue()  # only while the handshake has not been resumed past its start

    def configure_alpn_ids(self, ids: list[bytes]) -> None:
        self.check_configurable()
        try:
            self.alpn_ids = TlsPolicy.alpn_ids(ids)
        except ValueError:
            raise ErrorValue() from None

    def step(self, point: Point, too_late: bool,
             value: Callable[[], object]) -> Child:
        """Resume to `point`; a future (child of the handshake) for `value()` there."""
        if point in self.steps or too_late:
            raise ErrorValue()
        self.steps.add(point)
        session = self.session
        session.resume(point)
        return Child(session.handshake_future(lambda: session.reached(point), value), self)

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


def _identity_sent(connection: Connection) -> IdentityHandle | None:
    """A handle on the identity this side sent, if it sent one of its own."""
    sent = connection.session.identity_sent() if connection.session is not None else None
    return IdentityHandle(sent) if sent is not None else None


def _peer_identity(connection: Connection) -> PublicIdentity | None:
    return connection.session.peer_identity() if connection.session is not None else None


# -- identities -------------------------------------------------------------------

@interface.func("[method]public-identity.export-X509-chain")
def export_x509_chain(ctx: WasiCtx, identity: PublicIdentity) -> list[bytes]:
    return list(identity.chain)


@interface.func("[static]private-identity.parse")
def parse_identity(ctx: WasiCtx, private_key: bytes, chain: list[bytes]) -> IdentityHandle:
    # Imported here, not at load: identities bring in cryptography (~30 ms of
    # start-up), which a guest that never parses one should not pay for.
    from ..tls.identity import IdentityError, PrivateIdentity
    try:
        return IdentityHandle(PrivateIdentity.parse(private_key, chain))
    except IdentityError:
        raise ErrorValue() from None


@interface.func("[method]private-identity.public-identity")
def public_identity(ctx: WasiCtx, handle: IdentityHandle) -> PublicIdentity:
    from ..tls.identity import PublicIdentity
    return PublicIdentity(handle.identity.public.chain)


# -- clients ----------------------------------------------------------------------

class ClientConnection(Connection):
    def __init__(self, transport_in: InputStream, transport_out: OutputStream):
        super().__init__(transport_in, transport_out)
        self.server_name: str | None = None


class ClientHandshake(Handshake):
    def choose(self, hello: ClientHello | None,
               identity: PrivateIdentity | None = None) -> ContextChoice:
        return self.policy.choose_client_context(alpn_ids=self.alpn_ids, identity=identity)


class ClientIdentityRequest:
    def __init__(self, handshake: ClientHandshake):
        self.handshake = handshake


@interface.func("[constructor]client-connection")
def new_client_connection(ctx: WasiCtx, transport_in: InputStream,
                          transport_out: OutputStream) -> ClientConnection:
    return ClientConnection(transport_in, transport_out)


@interface.func("[method]client-connection.connect")
def connect(ctx: WasiCtx, connection: ClientConnection, server_name: str) -> Ok | Err:
    if connection.session is not None:
        return Err()  # at most once
    try:
        handshake = ClientHandshake(ctx, connection, server_name=server_name)
    except ValueError:
        return Err()  # a name the TLS library refuses
    connection.server_name = server_name
    return Ok(Child(handshake, connection))


@interface.func("[method]client-connection.server-name")
def client_server_name(ctx: WasiCtx, connection: ClientConnection) -> str | None:
    return connection.server_name


@interface.func("[method]client-connection.client-identity")
def client_identity_sent(ctx: WasiCtx, connection: ClientConnection) -> IdentityHandle | None:
    return _identity_sent(connection)


@interface.func("[method]client-connection.server-identity")
def client_server_identity(ctx: WasiCtx, connection: ClientConnection) -> PublicIdentity | None:
    return _peer_identity(connection)


@interface.func("[method]client-handshake.configure-alpn-ids")
def client_configure_alpn_ids(ctx: WasiCtx, handshake: ClientHandshake, ids: list[bytes]) -> None:
    handshake.configure_alpn_ids(ids)


# A resumed handshake (--tls-resume) has neither the server's certificate nor
# a certificate request: it runs through at the guest's first step, and each
# step then settles at once, with the leaf the session keeps and no request.

@interface.func("[method]client-handshake.verify-server-identity")
def verify_server_identity(ctx: WasiCtx, handshake: ClientHandshake) -> Child:
    session = handshake.session
    return handshake.step(
        Point.SERVER_CERTIFICATE,
        session.reached(Point.SERVER_CERTIFICATE) and not session.resumed,
        session.peer_identity)


@interface.func("[method]client-handshake.receive-client-identity-request")
def receive_client_identity_request(ctx: WasiCtx, handshake: ClientHandshake) -> Child:
    session = handshake.session
    return handshake.step(
        Point.CLIENT_IDENTITY_REQUEST,
        session.identity_committed or (session.reached(Point.DONE) and not session.resumed),
        lambda: (Child(ClientIdentityRequest(handshake), handshake)
                 if session.certificate_requested else None))


@interface.func("[static]client-handshake.finish")
def client_finish(ctx: WasiCtx, handshake: ClientHandshake) -> Child:
    return handshake.finish()


@interface.func("[static]client-handshake.abort")
def client_abort(ctx: WasiCtx, handshake: ClientHandshake) -> Child:
    return handshake.abort()


@interface.func("[static]client-identity-request.respond")
def respond(ctx: WasiCtx, request: ClientIdentityRequest,
            identities: list[IdentityHandle]) -> None:
    if identities:
        handshake, identity = request.handshake, identities[0].identity
        handshake.session.answer_certificate_request(lambda: handshake.choose(None, identity))


# -- servers ----------------------------------------------------------------------

class ServerConnection(Connection):
    """A server's connection: all it holds is shared with the client's."""


class ServerHandshake(Handshake):
    def __init__(self, ctx: WasiCtx, connection: ServerConnection):
        self.identities: list[PrivateIdentity] = []
        super().__init__(ctx, connection)

    def choose(self, hello: ClientHello | None) -> ContextChoice:
        """Chosen once the ClientHello is known (None when it could not be read)."""
        if not self.identities:
            raise TlsFailure("the server handshake has no identity: call "
                             "configure-server-identities first", kind=ErrorKind.CONFIGURATION)
        return self.policy.choose_server_context(
            hello, self.identities, alpn_ids=self.alpn_ids,
            request_client_identity=Point.CLIENT_CERTIFICATE in self.steps)


@interface.func("[constructor]server-connection")
def new_server_connection(ctx: WasiCtx, transport_in: InputStream,
                          transport_out: OutputStream) -> ServerConnection:
    return ServerConnection(transport_in, transport_out)


@interface.func("[method]server-connection.accept")
def accept(ctx: WasiCtx, connection: ServerConnection) -> Child:
    if connection.session is not None:
        raise ErrorValue()  # at most once
    return Child(ServerHandshake(ctx, connection), connection)


@interface.func("[method]server-connection.request-client-identity")
def request_client_identity_after(ctx: WasiCtx, connection: ServerConnection) -> Child:
    if connection.session is None:
        raise ErrorValue()
    try:
        return Child(connection.session.request_peer_identity(), connection)
    except TlsFailure:
        raise ErrorValue() from None


@interface.func("[method]server-connection.server-name")
def server_server_name(ctx: WasiCtx, connection: ServerConnection) -> str | None:
    hello = connection.session.client_hello if connection.session is not None else None
    return hello.server_name if hello is not None else None


@interface.func("[method]server-connection.client-identity")
def server_client_identity(ctx: WasiCtx, connection: ServerConnection) -> PublicIdentity | None:
    return _peer_identity(connection)


@interface.func("[method]server-connection.server-identity")
def server_identity_sent(ctx: WasiCtx, connection: ServerConnection) -> IdentityHandle | None:
    return _identity_sent(connection)


@interface.func("[method]server-handshake.configure-alpn-ids")
def server_configure_alpn_ids(ctx: WasiCtx, handshake: ServerHandshake, ids: list[bytes]) -> None:
    handshake.configure_alpn_ids(ids)


@interface.func("[method]server-handshake.configure-server-identities")
def configure_server_identities(ctx: WasiCtx, handshake: ServerHandshake,
                                identities: list[IdentityHandle]) -> None:
    if not identities:
        raise ErrorValue()
    handshake.check_configurable()
    handshake.identities = [handle.identity for handle in identities]


@interface.func("[method]server-handshake.receive-client-hello")
def receive_client_hello(ctx: WasiCtx, handshake: ServerHandshake) -> Child:
    session = handshake.session
    return handshake.step(Point.CLIENT_HELLO, session.started,
                          lambda: Child(session.client_hello, handshake))


@interface.func("[method]server-handshake.request-client-identity")
def request_client_identity(ctx: WasiCtx, handshake: ServerHandshake) -> Child:
    session = handshake.session
    return handshake.step(Point.CLIENT_CERTIFICATE, session.started, session.peer_identity)


@interface.func("[static]server-handshake.finish")
def server_finish(ctx: WasiCtx, handshake: ServerHandshake) -> Child:
    return handshake.finish()


@interface.func("[static]server-handshake.abort")
def server_abort(ctx: WasiCtx, handshake: ServerHandshake) -> Child:
    return handshake.abort()


@interface.func("[method]client-hello.server-name")
def hello_server_name(ctx: WasiCtx, hello: ClientHello) -> str | None:
    return hello.server_name


@interface.func("[method]client-hello.alpn-ids")
def hello_alpn_ids(ctx: WasiCtx, hello: ClientHello) -> list[bytes]:
    return list(hello.alpn_ids)


@interface.func("[method]client-hello.cipher-suites")
def hello_cipher_suites(ctx: WasiCtx, hello: ClientHello) -> list[int]:
    return list(hello.cipher_suites)


# -- session facts both roles report ------------------------------------------------

def _session_fact(read: Callable[[TlsSession], object]) -> Callable[[WasiCtx, Connection], object]:
    def getter(ctx: WasiCtx, connection: Connection) -> object:
        return read(connection.session) if connection.session is not None else None
    return getter


def _failure_reason(session: TlsSession) -> str | None:
    """Why the session failed: what the draft's failed futures cannot say."""
    return session.error_message() if session.failure is not None else None


for _role in ("client", "server"):
    for _fact, _read in (("alpn-id", TlsSession.alpn_id),
                         ("protocol-version", TlsSession.protocol_version),
                         ("cipher-suite", TlsSession.cipher_suite),
                         ("failure-reason", _failure_reason)):
        interface.func(f"[method]{_role}-connection.{_fact}")(_session_fact(_read))


# -- futures ------------------------------------------------------------------------

def _future_get(ctx: WasiCtx, future: Future) -> object:
    """`get` for every future here; the draft's failures carry nothing (the
    connection's `failure-reason` says why)."""
    return future.get()


for _future in ("future-streams", "future-client-hello", "future-public-identity",
                "future-client-identity-request"):
    interface.func(f"[method]{_future}.subscribe")(subscribe_future)
    interface.func(f"[method]{_future}.get")(_future_get)
