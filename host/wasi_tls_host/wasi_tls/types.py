"""wasi:tls/types@0.2.0-draft: the upstream TLS client, as a table over `session`.

`client-handshake` holds the server name and the guest's transport streams
(anything in `runtime.streams`); `finish` starts a `TlsSession` that runs the
handshake straight through, and `future-client-streams` hands out the
connection and its plaintext streams once. Trust is the host's (`TlsPolicy`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..io.error import IoError
from ..runtime.calls import Interface
from ..runtime.futures import Failed, Future, subscribe_future
from ..runtime.resources import Res
from ..runtime.streams import InputStream, OutputStream
from ..runtime.values import Child
from ..tls.policy import ContextChoice
from .session import TlsInput, TlsOutput, TlsSession, open_session

if TYPE_CHECKING:
    from ..runtime.context import WasiCtx

interface = Interface("wasi:tls/types@0.2.0-draft")
for _name, _res in (("client-handshake", Res.CLIENT_HANDSHAKE),
                    ("client-connection", Res.CLIENT_CONNECTION),
                    ("future-client-streams", Res.FUTURE_CLIENT_STREAMS),
                    ("input-stream", Res.INPUT_STREAM), ("output-stream", Res.OUTPUT_STREAM),
                    ("pollable", Res.POLLABLE), ("io-error", Res.IO_ERROR)):
    interface.resource(_name, _res)


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

    def streams(self) -> tuple[ClientConnection, Child, Child]:
        """What `future-client-streams.get` hands out: the connection and its streams."""
        return self, Child(self.input, self), Child(self.output, self)

    def close(self) -> None:
        self.session.close()


@interface.func("[constructor]client-handshake")
def new_client_handshake(ctx: WasiCtx, server_name: str, transport_in: InputStream,
                         transport_out: OutputStream) -> ClientHandshake:
    return ClientHandshake(server_name, transport_in, transport_out)


@interface.func("[static]client-handshake.finish")
def finish(ctx: WasiCtx, handshake: ClientHandshake) -> Future:
    # The policy's context is made at the first step, so a CA file the
    # operator got wrong fails this handshake with its own message.
    policy = ctx.config.tls
    try:
        session = open_session(ctx, handshake.transport_in, handshake.transport_out,
                               lambda hello: ContextChoice(policy.client_context()),
                               server_name=handshake.server_name)
    except ValueError as error:  # a name refused before any byte is sent
        handshake.close()
        return Future.resolved(Failed(str(error)))
    return session.handshake_future(lambda: session.handshake_done,
                                    lambda: ClientConnection(session).streams(),
                                    on_failure=session.close, on_drop=session.close)


@interface.func("[method]client-connection.close-output")
def close_output(ctx: WasiCtx, connection: ClientConnection) -> None:
    connection.output.close_notify()


interface.func("[method]future-client-streams.subscribe")(subscribe_future)


@interface.func("[method]future-client-streams.get")
def get(ctx: WasiCtx, future: Future) -> object:
    return future.get(lambda failed: IoError(failed.message))
