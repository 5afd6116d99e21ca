"""HTTP peers on loopback for the wasi:http tests: a server that answers
what the tests ask of a client, and raw servers that misbehave on purpose.

`H11Server` speaks HTTP/1.1 with h11 on blocking sockets, one thread per
connection, over TLS when given a context. Its routes:

    GET  /bytes/N      N bytes of `body_bytes(N)`, framed by Content-Length
    GET  /chunked/N    the same bytes, chunked, with trailer x-sha256
    POST /sha256       reads the request body (any framing); answers with
    PUT  /sha256       headers x-body-size, x-body-sha256, x-trailers
    GET  /echo         answers with x-seen-<name> for each request header
    GET  /client-cert  x-client-subject: the client certificate's DNS name

Every request it read is kept in `seen` (method, target, headers, body
size and digest, trailers, client subject, the ALPN id chosen).

nginx, with or without a client certificate, is `peers.Nginx`.
"""

from __future__ import annotations

import functools
import hashlib
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import h11

CHUNK = 64 * 1024


@functools.cache
def body_bytes(size: int) -> bytes:
    """The deterministic body the server sends for a size."""
    return hashlib.shake_256(f"http-fetch {size}".encode()).digest(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class SeenRequest:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body_size: int = 0
    body_sha256: str = ""
    trailers: list[tuple[str, str]] = field(default_factory=list)
    client_subject: str | None = None
    alpn: str | None = None
    #: Whether the connection's TLS handshake resumed a session.
    resumed: bool | None = None

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name), None)


class _Peer:
    """A threaded loopback listener; `serve(sock)` runs per connection."""

    def __init__(self, context: ssl.SSLContext | None = None):
        self.context = context
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.errors: list[BaseException] = []
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._run, args=(raw,), daemon=True).start()

    def _run(self, raw: socket.socket) -> None:
        try:
            sock = raw
            if self.context is not None:
                sock = self.context.wrap_socket(raw, server_side=True)
            self.serve(sock)
        except (OSError, ssl.SSLError, h11.ProtocolError) as error:
            self.errors.append(error)
        finally:
            raw.close()

    def serve(self, sock: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.listener.close()


class H11Server(_Peer):
    """See the module doc."""

    def __init__(self, context: ssl.SSLContext | None = None):
        super().__init__(context)
        self.seen: list[SeenRequest] = []

    def serve(self, sock: socket.socket) -> None:
        conn = h11.Connection(h11.SERVER)
        while True:
            event = _next_event(conn, sock)
            if isinstance(event, h11.Request):
                self._answer(conn, sock, event)
            if conn.our_state is h11.MUST_CLOSE or isinstance(event, h11.ConnectionClosed):
                return
            if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                conn.start_next_cycle()

    def _answer(self, conn: h11.Connection, sock: socket.socket, request: h11.Request) -> None:
        seen = SeenRequest(request.method.decode(), request.target.decode(),
                           [(name.decode(), value.decode("latin-1"))
                            for name, value in request.headers])
        if isinstance(sock, ssl.SSLSocket):
            seen.client_subject = _subject(sock.getpeercert())
            seen.alpn = sock.selected_alpn_protocol()
            seen.resumed = sock.session_reused
        digest = hashlib.sha256()
        while True:
            event = _next_event(conn, sock)
            if isinstance(event, h11.Data):
                digest.update(event.data)
                seen.body_size += len(event.data)
            elif isinstance(event, h11.EndOfMessage):
                seen.trailers = [(name.decode(), value.decode("latin-1"))
                                 for name, value in event.headers]
                break
            else:
                raise h11.RemoteProtocolError(f"unexpected {event!r}")
        seen.body_sha256 = digest.hexdigest()
        self.seen.append(seen)
        route, _, argument = seen.target.partition("?")[0].lstrip("/").partition("/")
        if route == "bytes":
            body = body_bytes(int(argument))
            _send(conn, sock, h11.Response(status_code=200, headers=[
                ("content-length", str(len(body))), ("content-type", "application/octet-stream")]))
            for start in range(0, len(body), CHUNK):
                _send(conn, sock, h11.Data(data=body[start:start + CHUNK]))
            _send(conn, sock, h11.EndOfMessage())
        elif route == "chunked":
            body = body_bytes(int(argument))
            _send(conn, sock, h11.Response(status_code=200, headers=[
                ("transfer-encoding", "chunked"), ("trailer", "x-sha256")]))
            for start in range(0, len(body), CHUNK):
                _send(conn, sock, h11.Data(data=body[start:start + CHUNK]))
            _send(conn, sock, h11.EndOfMessage(headers=[("x-sha256", sha256(body))]))
        elif route == "sha256":
            trailers = ";".join(f"{name}={value}" for name, value in seen.trailers)
            _respond(conn, sock, 200, [("x-body-size", str(seen.body_size)),
                                       ("x-body-sha256", seen.body_sha256),
                                       ("x-trailers", trailers)], b"ok")
        elif route == "echo":
            _respond(conn, sock, 200, [(f"x-seen-{name}", value)
                                       for name, value in seen.headers], b"")
        elif route == "client-cert":
            _respond(conn, sock, 200, [("x-client-subject", seen.client_subject or "none")], b"")
        else:
            _respond(conn, sock, 404, [], b"not found")


def _subject(certificate: dict | None) -> str | None:
    """The client certificate's first DNS name (trustme's leaves have no CN)."""
    if not certificate:
        return None
    names = [value for kind, value in certificate.get("subjectAltName", ()) if kind == "DNS"]
    return names[0] if names else "(no DNS name)"


def _next_event(conn: h11.Connection, sock: socket.socket) -> h11.Event:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(sock.recv(CHUNK))


def _send(conn: h11.Connection, sock: socket.socket, event: h11.Event) -> None:
    data = conn.send(event)
    if data:
        sock.sendall(data)


def _respond(conn: h11.Connection, sock: socket.socket, status: int,
             headers: list[tuple[str, str]], body: bytes) -> None:
    _send(conn, sock, h11.Response(status_code=status,
                                   headers=[*headers, ("content-length", str(len(body)))]))
    _send(conn, sock, h11.Data(data=body))
    _send(conn, sock, h11.EndOfMessage())


class RawServer(_Peer):
    """Runs `behave(sock)` on every connection (after TLS, with a context):
    for servers that answer wrongly, slowly, or not at all."""

    def __init__(self, behave: Callable[[socket.socket], None],
                 context: ssl.SSLContext | None = None):
        self.behave = behave
        super().__init__(context)

    def serve(self, sock: socket.socket) -> None:
        self.behave(sock)


def read_head(sock: socket.socket) -> bytes:
    """Read up to the end of a request head (what a raw server needs first)."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(4096)
        if not chunk:
            break
        received += chunk
    return received


def hold(seconds: float) -> Callable[[socket.socket], None]:
    """A behaviour: say nothing for `seconds`, then close."""
    def behave(sock: socket.socket) -> None:
        threading.Event().wait(seconds)
    return behave
