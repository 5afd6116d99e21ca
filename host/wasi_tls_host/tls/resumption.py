"""TLS session resumption for one guest run's clients (`TlsPolicy.resume_sessions`).

A `SessionCache` belongs to one guest run (its `WasiCtx`): no other guest
ever sees its sessions. A client connection gets a `Resumption` for the
server it talks to; the core asks it for a session to offer once the
context is chosen (`offer`), and the glue hands it the connection when the
connection is dropped (`keep`).

A session is offered only to the same server: the same server name (what
the session's certificate was verified for; resuming skips the
certificate), the same transport peer address and port where the transport
is a TCP connection, and the same ``ssl.SSLContext``. The host's contexts
are built per policy (the trust anchors, CRLs) and per ALPN offer and
client identity, so the same context means the same trust, the same ALPN
ids and the same client certificate (or none); Python's ssl also refuses a
session from another context. Anything else gets a full handshake.

Each session is offered once: `offer` takes it out of the cache, and the
connection puts back the session it ended with. Under TLS 1.3 that is the
ticket the server sent on this connection (a ticket is not reused, RFC 8446
C.4), which the client has only once it has read past the handshake: a
connection closed right after its handshake usually leaves nothing to
resume. Under TLS 1.2 the session arrives with the handshake and is kept as
it is when resumed.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # ssl only in annotations: every guest run makes a cache
    import ssl

    from .core import TlsCore

    #: Where a session may be offered: server name, transport peer (or None), context.
    SessionKey = tuple[str, object, ssl.SSLContext]

__all__ = ["Resumption", "SessionCache"]

#: Servers one guest run keeps a session for; the least recently used goes first.
SESSIONS_KEPT = 64


class SessionCache:
    """The sessions one guest run's clients may resume, one per server."""

    def __init__(self, limit: int = SESSIONS_KEPT):
        self._sessions: OrderedDict[SessionKey, ssl.SSLSession] = OrderedDict()
        self._limit = limit

    def __len__(self) -> int:
        return len(self._sessions)

    def take(self, key: SessionKey) -> ssl.SSLSession | None:
        return self._sessions.pop(key, None)

    def put(self, key: SessionKey, session: ssl.SSLSession) -> None:
        self._sessions[key] = session
        self._sessions.move_to_end(key)
        if len(self._sessions) > self._limit:
            self._sessions.popitem(last=False)

    def resumption(self, server_name: str, peer: object) -> Resumption:
        """What one client connection to `server_name` at `peer` (a transport
        address, or None when the transport is no TCP connection) may resume."""
        return Resumption(self, server_name, peer)


class Resumption:
    """One client connection's part in its guest run's `SessionCache`."""

    def __init__(self, cache: SessionCache, server_name: str, peer: object):
        self._cache = cache
        self._server_name = server_name
        self._peer = peer
        self._offered: ssl.SSLSession | None = None

    def offer(self, context: ssl.SSLContext) -> ssl.SSLSession | None:
        """The session to offer from `context`, if one is kept (taken out)."""
        self._offered = self._cache.take((self._server_name, self._peer, context))
        return self._offered

    def keep(self, core: TlsCore) -> None:
        """Keep the session a connection ended with, if it can be resumed: a
        handshake that completed, a connection that did not break, and a
        session the server will know again (a ticket, or a TLS 1.2 session id)."""
        ended = core.resumable_session()
        if ended is None:
            return
        context, session = ended
        if not (session.has_ticket or (session.id and core.version() == "TLSv1.2")):
            return
        if core.version() == "TLSv1.3" and session == self._offered:
            return  # the ticket this connection used, and no new one came
        self._cache.put((self._server_name, self._peer, context), session)
