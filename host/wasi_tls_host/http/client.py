"""The host's HTTP client: one outgoing request and its response.

Theory of operation
-------------------
`ClientExchange` carries one request from `outgoing-handler.handle` to
the end of its response, on a connection of its own (the request says
`Connection: close`; nothing is pooled). It moves through

    RESOLVING -> CONNECTING -> HANDSHAKING (https) -> EXCHANGING -> DONE
                                       any of them -> FAILED

and its one `pump()` takes every step that can be taken now without
blocking. Every guest-visible operation on anything that belongs to the
exchange (the response future, the response body stream, the trailers,
the request body's stream) pumps first, and every pollable waits on
`wait_spec()`, which names exactly what could let the pump go on: the
resolver's pipe, the connecting socket, the TLS transport, the HTTP
connection's streams, and the deadline that applies.

* Names are resolved off the main thread (wasi:sockets' resolver); the
  request may go only to addresses the operator allowed (`--allow-net`,
  with the request's port), tried in order until one accepts.
* https runs the host's one TLS core through a `TlsSession` with the
  operator's `TlsPolicy` (trust, version floor, key log), offering ALPN
  `http/1.1` and, if the operator gave one for this host, a client
  certificate (`--http-client-identity`).
* The HTTP/1.1 work is `h1.H1Connection`'s. The request body streams from
  the guest's `BodyPipe` as the connection takes it; the response body is
  read only as fast as the guest reads it.

Deadlines (request-options, or the host's defaults): connect covers name
resolution, TCP and the TLS handshake (connection-timeout); first byte
runs from the moment the whole request has been sent to the response
head; between bytes covers each wait for the body after that (both
connection-read-timeout, as in wasmtime).

Failures are sticky: the first one ends the exchange, closes the
connection, and is what every later operation reports, as its error-code.
A failure to send does not end an exchange whose response may still come
(a server may answer early and stop reading); it ends only the request
body. The exchange is abandoned (and its connection closed) once the
guest holds nothing that could still read the response.
"""

from __future__ import annotations

import enum
import errno
import ipaddress
import socket
from dataclasses import dataclass

import h11

from ..config import host_key
from ..runtime.futures import Future, Ready
from ..runtime.poll import NEVER, WRITE, WaitSpec
from ..runtime.streams import StreamFailed, writable_now
from ..sockets.ip_name_lookup import ResolveAddressStream
from ..sockets.network import permits
from ..sockets.tcp import SharedSocket, TcpInput, TcpOutput
from ..tls.errors import MSG_TRUNCATED, TlsFailure
from ..tls.policy import ContextChoice
from ..wasi_tls.session import TlsInput, TlsOutput, TlsSession, open_session
from . import errors
from .bodies import HttpFailed, IncomingBody
from .errors import HttpFailure
from .h1 import H1Connection, MessageBody, received_fields
from .messages import (
    Authority,
    IncomingResponse,
    OutgoingRequest,
    RequestOptions,
    content_length,
    method_name,
    scheme_name,
)

NS_PER_S = 1_000_000_000
#: The host's timeouts when the guest's request-options leave them unset.
DEFAULT_CONNECT_TIMEOUT_NS = 30 * NS_PER_S
DEFAULT_FIRST_BYTE_TIMEOUT_NS = 120 * NS_PER_S
DEFAULT_BETWEEN_BYTES_TIMEOUT_NS = 120 * NS_PER_S
ALPN_IDS = ("http/1.1",)
DEFAULT_PORTS = {"http": 80, "https": 443}
#: Methods that carry a body by convention: sent with Content-Length: 0 when the guest gave none.
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True)
class Timeouts:
    connect_ns: int = DEFAULT_CONNECT_TIMEOUT_NS
    first_byte_ns: int = DEFAULT_FIRST_BYTE_TIMEOUT_NS
    between_bytes_ns: int = DEFAULT_BETWEEN_BYTES_TIMEOUT_NS

    @classmethod
    def of(cls, options: RequestOptions | None) -> Timeouts:
        if options is None:
            return cls()
        return cls(_or(options.connect_timeout, DEFAULT_CONNECT_TIMEOUT_NS),
                   _or(options.first_byte_timeout, DEFAULT_FIRST_BYTE_TIMEOUT_NS),
                   _or(options.between_bytes_timeout, DEFAULT_BETWEEN_BYTES_TIMEOUT_NS))


@dataclass(frozen=True)
class Target:
    """Where a request goes and what its head says."""

    https: bool
    host: str  # an IPv6 address without brackets
    port: int
    authority: str  # the Host header: the request's authority as the guest set it
    path: str

    @classmethod
    def of(cls, request: OutgoingRequest) -> Target:
        """Raises HttpFailure for a request that cannot be sent."""
        scheme = scheme_name(request.scheme) if request.scheme is not None else "https"
        if scheme not in DEFAULT_PORTS:
            raise errors.failure("HTTP-protocol-error", f"unsupported scheme {scheme!r}")
        text = request.authority or ""
        authority = Authority.parse(text) if text else None
        if authority is None:
            raise errors.failure("HTTP-request-URI-invalid", "the request has no authority")
        path = request.path_with_query or "/"
        if not path.startswith("/") and path != "*":
            path = "/" + path
        return cls(scheme == "https", authority.host,
                   authority.port if authority.port is not None else DEFAULT_PORTS[scheme],
                   text, path)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.https else 'http'}://{host}:{self.port}"


def ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class Phase(enum.Enum):
    RESOLVING = "resolving"
    CONNECTING = "connecting"
    HANDSHAKING = "handshaking"
    EXCHANGING = "exchanging"
    DONE = "done"
    FAILED = "failed"


_CONNECT_PHASES = frozenset({Phase.RESOLVING, Phase.CONNECTING, Phase.HANDSHAKING})


class ClientExchange:
    """One request and its response; see the module doc."""

    def __init__(self, ctx, request: OutgoingRequest, target: Target, timeouts: Timeouts):
        self.ctx = ctx
        self.now_ns = ctx.now_ns
        self.target = target
        self.timeouts = timeouts
        self.method = method_name(request.method)
        self.headers = request.headers
        self.pipe = request.body.pipe if request.body is not None else None
        if self.pipe is not None:
            self.pipe.attach(self)
        self.phase = Phase.RESOLVING
        self.failure: HttpFailure | None = None
        self.connect_deadline_ns = self.now_ns() + timeouts.connect_ns
        #: Resources the guest holds that can still read the response.
        self.holders = 1
        self.resolver: ResolveAddressStream | None = None
        #: Addresses still to try, in order.
        self.addresses: list = []
        self.last_connect_error = errno.ECONNREFUSED
        self.sock: socket.socket | None = None
        self.transport: tuple[TcpInput, TcpOutput] | None = None
        self.session: TlsSession | None = None
        self.tls_output: TlsOutput | None = None
        self.conn: H1Connection | None = None
        self.request_sent = False

    @classmethod
    def start(cls, ctx, request: OutgoingRequest,
              options: RequestOptions | None) -> ClientExchange:
        """Begin sending `request`; raises HttpFailure when it cannot be sent
        at all (the guest gets that from `handle` itself)."""
        target = Target.of(request)
        if not ctx.config.has_network:
            raise _denied("the host grants no network access (--allow-net)")
        try:
            declared = content_length(request.headers)
        except ValueError as error:
            raise errors.internal_error(str(error)) from None
        if request.body is None and declared:
            raise errors.HttpFailure(errors.body_size("request", 0),
                                     "the request declares a Content-Length but has no body")
        literal = ip_literal(target.host)
        if literal is not None and not permits(ctx, literal, target.port, "connect"):
            raise _denied(f"{target} is outside --allow-net")
        exchange = cls(ctx, request, target, Timeouts.of(options))
        if literal is not None:
            exchange.addresses = [literal]
        else:
            try:
                exchange.resolver = ResolveAddressStream(target.host)
            except OSError as error:  # no descriptor left for the resolver's pipe
                raise errors.internal_error(f"cannot resolve {target.host}: {error}") from None
        exchange.pump()
        return exchange

    # -- the pump ----------------------------------------------------------------------
    def pump(self) -> None:
        """Take every step that can be taken now, without blocking."""
        try:
            if self.phase is Phase.RESOLVING:
                self._resolve()
            if self.phase is Phase.CONNECTING:
                self._connect()
            if self.phase is Phase.HANDSHAKING:
                self._handshake()
            if self.phase is Phase.EXCHANGING:
                self._exchange()
            if self.phase in _CONNECT_PHASES and self.now_ns() >= self.connect_deadline_ns:
                raise errors.failure(
                    "connection-timeout", f"connecting to {self.target} took longer than "
                    f"{self.timeouts.connect_ns / NS_PER_S:g} s")
        except HttpFailure as failure:
            self._fail(failure)

    def _resolve(self) -> None:
        resolver = self.resolver
        if resolver is None:  # an address literal: nothing to look up
            self._connect_to(self.addresses)
            return
        if not resolver.ready():
            return
        self.resolver = None
        resolver.close()
        if resolver.error is not None:
            raise errors.from_resolver(resolver.error, self.target.host)
        addresses = resolver.addresses or ()
        allowed = [address for address in addresses
                   if self.ctx.config.network_allows(address, self.target.port)]
        if not allowed:
            # Named on the host's side only when the request cannot go anywhere.
            for address in addresses:
                permits(self.ctx, address, self.target.port, "connect")
            raise _denied(f"{self.target} is outside --allow-net")
        self._connect_to(allowed)

    def _connect_to(self, addresses: list) -> None:
        self.addresses = list(addresses)
        self.phase = Phase.CONNECTING
        self._next_address()

    def _next_address(self) -> None:
        """Start connecting to the next candidate address (non-blocking)."""
        while self.addresses:
            address = self.addresses.pop(0)
            family = socket.AF_INET if address.version == 4 else socket.AF_INET6
            try:
                sock = socket.socket(family, socket.SOCK_STREAM)
            except OSError as error:
                raise errors.internal_error(f"cannot open a socket: {error}") from None
            sock.setblocking(False)
            result = sock.connect_ex((str(address), self.target.port))
            if result in (0, errno.EINPROGRESS):
                self.sock = sock
                return
            sock.close()
            self.last_connect_error = result
        raise errors.from_connect(self.last_connect_error, str(self.target))

    def _connect(self) -> None:
        sock = self.sock
        if sock is None or not writable_now(sock.fileno()):
            return
        status = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if status:
            sock.close()
            self.sock = None
            self.last_connect_error = status
            self._next_address()
            return
        self.sock = None
        # The connection's own buffers gather small writes; Nagle would only
        # delay a request head or a TLS flight by a delayed ACK.
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # the connection already failed; its streams will say so
        shared = SharedSocket(sock)
        self.transport = (TcpInput(shared), TcpOutput(shared))
        shared.release()  # the streams keep the socket open
        if self.target.https:
            self._start_tls()
        else:
            self._open(self.transport[0], self.transport[1], errors.from_transport)

    def _start_tls(self) -> None:
        policy = self.ctx.config.tls
        identity = self.ctx.config.http_client_identities.get(host_key(self.target.host))
        assert self.transport is not None
        transport_in, transport_out = self.transport
        try:
            # The context is built at the first step, so a CA file that went
            # missing fails this handshake with its own message.
            self.session = open_session(
                self.ctx, transport_in, transport_out,
                lambda hello: ContextChoice(policy.client_context(alpn_ids=ALPN_IDS,
                                                                  identity=identity)),
                server_name=self.target.host)
        except ValueError as error:
            raise errors.failure("HTTP-request-URI-invalid", str(error)) from None
        self.phase = Phase.HANDSHAKING

    def _handshake(self) -> None:
        session = self.session
        assert session is not None
        session.pump()
        if session.failure is not None:
            raise _session_failure(session.failure.error)
        if session.handshake_done:
            self.tls_output = TlsOutput(session)
            self._open(TlsInput(session), self.tls_output, self._tls_stream_failure)

    def _tls_stream_failure(self, error: StreamFailed) -> HttpFailure:
        """What a failed TLS stream means: the session's sticky failure, or
        else a truncation (which the core reports once, so not sticky)."""
        session = self.session
        assert session is not None
        if session.failure is not None:
            return _session_failure(session.failure.error)
        if error.message == MSG_TRUNCATED:
            return errors.failure("HTTP-response-incomplete", error.message)
        return errors.internal_error(error.message)

    def _open(self, transport_in, transport_out, classify) -> None:
        self.conn = H1Connection(h11.CLIENT, transport_in, transport_out, now_ns=self.now_ns,
                                 classify=classify)
        self.phase = Phase.EXCHANGING
        self.conn.send(h11.Request(method=self.method, target=self.target.path,
                                   headers=self._head_headers()))
        if self.pipe is None:
            self.conn.send(h11.EndOfMessage())

    def _head_headers(self) -> list[tuple[bytes, bytes]]:
        headers = [(b"host", self.target.authority.encode()), *self.headers.wire(),
                   (b"connection", b"close")]
        if self.pipe is not None:
            if not self.headers.has("content-length"):
                headers.append((b"transfer-encoding", b"chunked"))
        elif self.method in _BODY_METHODS and not self.headers.has("content-length"):
            headers.append((b"content-length", b"0"))
        return headers

    def _exchange(self) -> None:
        conn = self.conn
        assert conn is not None
        pipe = self.pipe
        if pipe is not None and not self.request_sent:
            if pipe.aborted is not None:
                raise pipe.aborted
            conn.send_body_from(pipe)
        conn.flush()
        if conn.write_failure is not None and pipe is not None and pipe.failure is None:
            pipe.failure = conn.write_failure
        if not self.request_sent and conn.sent_everything:
            self.request_sent = True
            if conn.head is None:
                conn.expect_within(self.timeouts.first_byte_ns, lambda: errors.failure(
                    "connection-read-timeout", f"no response from {self.target} within "
                    f"{self.timeouts.first_byte_ns / NS_PER_S:g} s of the request"))
        had_head = conn.head is not None
        conn.receive()
        if conn.head is not None and not had_head:
            conn.expect_within(self.timeouts.between_bytes_ns, lambda: errors.failure(
                "connection-read-timeout", f"{self.target} sent nothing for "
                f"{self.timeouts.between_bytes_ns / NS_PER_S:g} s of the response body"))
        if conn.read_failure is not None:
            raise conn.read_failure
        if conn.message_done and (self.request_sent or conn.write_failure is not None):
            self.phase = Phase.DONE
            self._close_transport(graceful=True)

    def _fail(self, failure: HttpFailure) -> None:
        if self.failure is not None:
            return
        self.failure = failure
        self.phase = Phase.FAILED
        if self.pipe is not None and self.pipe.failure is None:
            self.pipe.failure = failure
        if self.conn is not None and self.conn.read_failure is None:
            self.conn.read_failure = failure
        self._close_transport(graceful=False)

    def _close_transport(self, *, graceful: bool) -> None:
        if self.resolver is not None:
            self.resolver.close()
            self.resolver = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.session is not None:
            if graceful and self.tls_output is not None:
                self.tls_output.close_notify()
            self.session.close()  # it releases the TCP streams once its goodbye is sent
        elif self.transport is not None:
            for stream in self.transport:
                stream.close()
        self.transport = None

    # -- readiness -----------------------------------------------------------------------
    def wait_spec(self) -> WaitSpec:
        phase = self.phase
        if phase is Phase.RESOLVING and self.resolver is not None:
            return WaitSpec(self.resolver.wait_on().fds, self.connect_deadline_ns)
        if phase is Phase.CONNECTING and self.sock is not None:
            return WaitSpec(((self.sock.fileno(), WRITE),), self.connect_deadline_ns)
        if phase is Phase.HANDSHAKING and self.session is not None:
            spec = self.session.wait_spec(deadline=True)
            deadline = min(self.connect_deadline_ns, spec.deadline_ns or self.connect_deadline_ns)
            return WaitSpec(spec.fds, deadline)
        if phase is Phase.EXCHANGING and self.conn is not None:
            return self.conn.wait_spec()
        return NEVER

    # -- the response, for its future --------------------------------------------------
    def settle_response(self) -> Ready | HttpFailed | None:
        self.pump()
        conn = self.conn
        if conn is not None and isinstance(conn.head, h11.Response):
            body = MessageBody(conn, pump=self.pump, wait_spec=self.wait_spec,
                               release=self.release)
            return Ready(IncomingResponse(conn.head.status_code,
                                          received_fields(conn.head.headers.raw_items()),
                                          IncomingBody(body)))
        if self.failure is not None:
            return HttpFailed.of(self.failure)
        return None

    def body_wait_spec(self) -> WaitSpec:
        """What could make room in the request body's pipe (bodies.Consumer)."""
        return self.wait_spec()

    def response_future(self) -> Future:
        """`future-incoming-response`: dropped unanswered, it gives the exchange up;
        once taken, the response carries the exchange on."""
        return Future(self.settle_response, self.wait_spec, on_drop=self.release)

    def release(self) -> None:
        """The guest dropped something that could still read the response."""
        self.holders -= 1
        if self.holders == 0 and self.phase not in (Phase.DONE, Phase.FAILED):
            self._fail(errors.failure("HTTP-protocol-error",
                                      "the guest gave up the response; the connection "
                                      "was closed"))


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _denied(why: str) -> HttpFailure:
    return errors.failure("HTTP-request-denied", why)


def _session_failure(cause: TlsFailure | StreamFailed) -> HttpFailure:
    """A TLS session's failure: the TLS core's, or its transport's."""
    if isinstance(cause, TlsFailure):
        return errors.from_tls(cause)
    return errors.from_transport(cause)
