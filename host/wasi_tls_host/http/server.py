"""One connection a server accepted: TLS, request heads under deadlines, and
each request's exchange with the handler, over HTTP/1.1.

Theory of operation
-------------------
A `ServerConnection` runs on a thread of its own from accept to close and
takes its client through

    HANDSHAKE (https) -> HEAD -> EXCHANGE -> DRAIN -> HEAD -> ... -> CLOSE

in that order, never blocking except in `_wait`, which polls what the
current step needs (the connection's streams, its deadline) and the
server's `Shutdown` pipes. The handler (a guest, see `serve`) runs on the
same thread during EXCHANGE: the request body and the response body are
wasi:http resources that pump the `Exchange` whenever the guest touches
them, and the guest's waits poll this connection's streams, so no other
thread ever touches the connection.

HTTP/1.1 itself is `h1.H1Connection`'s, shared with the client. The
request body is read only as fast as the guest reads it (the connection's
body buffer bounds what is held), the response body is sent as the guest
writes it (its `BodyPipe` and the connection's wire budget bound that),
and an `Expect: 100-continue` is answered when the guest first reads.

Guards, each ending only its own connection:

* the TLS handshake must end within the policy's handshake timeout;
* the first request head must be complete within `head_timeout` of the
  connection being ready; a later one, within `head_timeout` of its first
  byte, and that byte must come within `idle_timeout` (keep-alive);
* a head larger than `max_head_size` is answered 431, a malformed one 400;
* a client that sends nothing of a body it announced, or takes nothing of
  the response, for `idle_timeout` fails the guest's read or write;
* on shutdown (`Shutdown.drain`) a connection waiting for a head closes, a
  request in flight finishes with `Connection: close`; `Shutdown.abort`
  (the grace period is over) cuts what is left.

A connection closes gracefully: what is queued goes out (TLS close_notify
too), then FIN, then whatever the client still sends is read and dropped
for a moment (`LINGER_S`), so that a client still uploading gets the
response rather than a reset. A connection whose response was cut (or
whose queue would not drain in time) is reset instead, so that the kernel
does not go on trickling bytes to a client that stopped reading.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING

import h11

from ..runtime.poll import MAX_TIMEOUT_MS, READ, WaitSpec, earliest
from ..runtime.streams import InputStream, OutputStream, StreamClosed, StreamFailed
from ..runtime.values import Case, Err
from ..sockets.tcp import SharedSocket, TcpInput, TcpOutput
from ..tls.core import Point
from ..tls.errors import ErrorKind, TlsFailure
from ..tls.policy import ContextChoice
from ..wasi_tls.session import TlsInput, TlsOutput, TlsSession
from . import errors
from .bodies import BodyPipe, IncomingBody
from .errors import HttpFailure
from .h1 import H1Connection, MessageBody, incoming_request, reason_phrase
from .h1 import response_head as guest_response_head
from .messages import IncomingRequest, OutgoingResponse, ResponseOutparam, ResponseResult
from .settings import ConnectionLimits

if TYPE_CHECKING:
    from ..tls.client_hello import ClientHello
    from ..tls.policy import TlsPolicy

log = logging.getLogger(__name__)

NS_PER_S = 1_000_000_000
#: How long a closing connection may take to deliver what is queued, and
#: then reads and drops what the client still sends.
LINGER_S = 2.0
#: The only protocol offered over TLS.
ALPN_IDS = ("http/1.1",)


@dataclass(frozen=True)
class TlsServing:
    """How a server speaks TLS: the operator's policy (its identities are the
    certificates served, SNI choosing among them) and whether clients must
    present a certificate (`client_auth`, one of `settings.CLIENT_AUTH_MODES`)."""

    policy: TlsPolicy
    client_auth: str = "none"

    def choose(self, hello: ClientHello | None) -> ContextChoice:
        return self.policy.choose_server_context(
            hello, list(self.policy.identities.values()), alpn_ids=ALPN_IDS,
            request_client_identity=self.client_auth != "none",
            require_client_identity=self.client_auth == "require")


class Shutdown:
    """A server's stop request, seen by every connection. `drain` stops
    taking new requests; `abort` (the grace period is over) stops the rest.
    Each has a pipe that becomes readable for good, so a wait can include it."""

    def __init__(self) -> None:
        self.draining = False
        self.aborted = False
        self.drain_fd, self._drain_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.abort_fd, self._abort_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def drain(self) -> None:
        """Safe in a signal handler: a flag and a write."""
        self.draining = True
        poke(self._drain_write)

    def abort(self) -> None:
        self.drain()
        self.aborted = True
        poke(self._abort_write)

    def close(self) -> None:
        for fd in (self.drain_fd, self._drain_write, self.abort_fd, self._abort_write):
            os.close(fd)


def poke(fd: int) -> None:
    """Make a wake-up pipe readable (once is enough)."""
    try:
        os.write(fd, b"!")
    except BlockingIOError:
        pass  # already readable


def wait(spec: WaitSpec, now_ns: Callable[[], int], *extra_fds: int | None) -> None:
    """Block until something in `spec` (or one of `extra_fds`) is ready, or its deadline."""
    poller = select.poll()
    masks: dict[int, int] = {}
    for fd, events in spec.fds:
        masks[fd] = masks.get(fd, 0) | events
    for extra in extra_fds:
        if extra is not None:
            masks[extra] = masks.get(extra, 0) | READ
    for fd, events in masks.items():
        poller.register(fd, events)
    timeout_ms = None
    if spec.deadline_ns is not None:
        timeout_ms = min(MAX_TIMEOUT_MS, max(0, -(-(spec.deadline_ns - now_ns()) // 1_000_000)))
    poller.poll(timeout_ms)


#: What the server answers a head h11 refuses, by the error-code it is.
_REFUSALS = {"HTTP-request-header-section-size": HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
             "HTTP-protocol-error": HTTPStatus.BAD_REQUEST}

#: Runs the handler for one exchange; it must answer through `exchange.outparam`
#: (or `exchange.handler_failed`) and never raise.
Handler = Callable[["Exchange"], None]


class Exchange:
    """One request and the handler's response, on a connection's thread.

    The handler gets `request` and `outparam` (the wasi:http resources) and
    ends by returning; `finish` then sends what the response still has
    queued and says whether the connection can take another request.
    """

    def __init__(self, conn: H1Connection, head: h11.Request, scheme: Case, *,
                 limits: ConnectionLimits, shutdown: Shutdown, now_ns: Callable[[], int]):
        self.conn = conn
        self.method = head.method.decode("ascii", "replace")
        self.target = head.target.decode("ascii", "replace")
        self.now_ns = now_ns
        self.idle_ns = int(limits.idle_timeout * NS_PER_S)
        #: Once it drains, the response says Connection: close.
        self.shutdown = shutdown
        body = MessageBody(conn, pump=self._pump_request, wait_spec=self.body_wait_spec,
                           release=self._release_request)
        self.request: IncomingRequest = incoming_request(head, scheme, IncomingBody(body))
        self.outparam = ResponseOutparam(self._deliver)
        #: The status line is queued (the guest's response or an error's).
        self.responded = False
        self.status: int | None = None
        self.pipe: BodyPipe | None = None
        #: Why the response cannot be completed; the connection is then cut.
        self.aborted: str | None = None
        self.request_released = False
        self._sent_mark = conn.bytes_sent
        self._progress_ns = now_ns()
        conn.expect_within(self.idle_ns, lambda: errors.failure(
            "connection-read-timeout",
            f"the client sent nothing of the request body for {limits.idle_timeout:g} s"))

    def __str__(self) -> str:
        return f"{self.method} {self.target}"

    # -- the request body -----------------------------------------------------------
    def _pump_request(self) -> None:
        conn = self.conn
        if conn.h11.they_are_waiting_for_100_continue and not self.responded:
            conn.send(h11.InformationalResponse(status_code=100, headers=[]))
        self.pump()

    def _release_request(self) -> None:
        self.request_released = True

    # -- the response -----------------------------------------------------------------
    def _deliver(self, result: ResponseResult) -> None:
        """`response-outparam.set` (or the outparam dropped: an error)."""
        if self.responded:
            return  # the handler already failed, and was answered for
        if isinstance(result, Err):
            self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR,
                            f"the handler answered {describe_code(result.value)}")
            return
        self._send_response(result.value)

    def _send_response(self, response: OutgoingResponse) -> None:
        extra: list[tuple[bytes, bytes]] = []
        if self.shutdown.draining:
            extra.append((b"connection", b"close"))
        if (response.body is None and not response.headers.has("content-length")
                and response.status not in (204, 304)):
            extra.append((b"content-length", b"0"))
        try:
            head = guest_response_head(response, extra)
        except h11.LocalProtocolError as error:
            self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR,
                            f"the handler's response cannot be sent: {error}")
            return
        self.responded = True
        self.status = response.status
        self.conn.send(head)
        if response.body is None:
            self.conn.send(h11.EndOfMessage())
        else:
            self.pipe = response.body.pipe
            self.pipe.attach(self)
        self.pump()

    def send_error(self, status: HTTPStatus, why: str) -> None:
        """Answer with `status` instead of the handler, if nothing has been
        sent yet; else cut the response short. `why` goes to the log only,
        in one line that says which of the two happened."""
        if self.responded:
            self.abort(why, logging.WARNING)
            return
        log.warning("%s: %s; answered %d", self, why, status)
        self.responded = True
        self.status = status
        send_plain(self.conn, status, closing=self.shutdown.draining)

    def handler_failed(self, why: str, backtrace: str = "") -> None:
        """The handler ended without finishing its response (a trap).
        `backtrace`, the trap's wasm backtrace (under --debug), is logged
        first, as `run --debug` prints it above the trap's line."""
        if backtrace:
            log.warning("%s: %s", self, backtrace.rstrip())
        self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR, why)

    def abort(self, why: str, level: int = logging.INFO) -> None:
        """Cut the response short, and log it once, at `level` (a failing
        client is news, a failing handler a warning)."""
        if self.aborted is None:
            self.aborted = why
            log.log(level, "%s: response cut short: %s", self, why)
            if self.pipe is not None and self.pipe.failure is None:
                self.pipe.failure = errors.failure("HTTP-protocol-error", why)

    # -- moving the connection along (bodies.Consumer) -----------------------------
    def pump(self) -> None:
        """Take in what the request body can hold, send what the response has."""
        conn = self.conn
        conn.receive()
        pipe = self.pipe
        if pipe is not None and self.aborted is None:
            if pipe.aborted is not None:
                self.abort(pipe.aborted.message)
            else:
                if self.method == "HEAD":
                    pipe.buffer.clear()  # a HEAD response has no body to send
                conn.send_body_from(pipe)
        conn.flush()
        if conn.write_failure is not None:
            self.abort(conn.write_failure.message)
        self._check_progress()

    def _check_progress(self) -> None:
        """A client that takes nothing of the response for `idle_ns` while
        some is waiting fails it."""
        now = self.now_ns()
        if self.conn.bytes_sent != self._sent_mark or not self._has_unsent():
            self._sent_mark = self.conn.bytes_sent
            self._progress_ns = now
        elif now >= self._progress_ns + self.idle_ns and self.aborted is None:
            self.abort(f"the client took nothing of the response for "
                       f"{self.idle_ns / NS_PER_S:g} s")

    def _has_unsent(self) -> bool:
        return bool(self.conn.wire) or (self.pipe is not None and bool(self.pipe.buffer))

    def body_wait_spec(self) -> WaitSpec:
        """What could move the exchange on: the connection's streams, the
        client's read deadline, and the response's progress deadline."""
        spec = self.conn.wait_spec()
        stall = self._progress_ns + self.idle_ns if self._has_unsent() else None
        return WaitSpec(spec.fds, earliest(spec.deadline_ns, stall))

    # -- after the handler ------------------------------------------------------------
    @property
    def complete(self) -> bool:
        """The whole response is queued and the transport has taken it."""
        return self.responded and self.conn.sent_everything

    def finish(self) -> bool:
        """Send the rest of the response (the handler has returned and its
        resources are gone, so its body is finished or aborted). True when
        the connection may carry another request."""
        if not self.responded:  # a handler that did not answer (see Handler)
            self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR, "the handler gave no response")
        while True:
            self.pump()
            if self.aborted is not None:
                return False
            if self.complete:
                break
            if self.shutdown.aborted:
                self.abort("the server stopped before the response was sent")
                continue
            wait(self.body_wait_spec(), self.now_ns, self.shutdown.abort_fd)
        h11_conn = self.conn.h11
        return h11_conn.our_state is h11.DONE and h11_conn.their_state is h11.DONE


def describe_code(code: Case) -> str:
    """An error-code for the log: its case, and its payload when it has one."""
    return code.tag if code.payload is None else f"{code.tag} ({code.payload})"


def send_plain(conn: H1Connection, status: int, *, closing: bool) -> None:
    """A short text response of the server's own: the status's phrase."""
    body = f"{status} {reason_phrase(status).decode()}\n".encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"),
               (b"content-length", str(len(body)).encode())]
    if closing:
        headers.append((b"connection", b"close"))
    conn.send(h11.Response(status_code=status, headers=headers, reason=reason_phrase(status)))
    conn.send(h11.Data(data=body))
    conn.send(h11.EndOfMessage())


class ServerConnection:
    """One accepted connection, served on the calling thread by `run`."""

    def __init__(self, sock: socket.socket, peer: str, handler: Handler, *,
                 tls: TlsServing | None, limits: ConnectionLimits, shutdown: Shutdown,
                 now_ns: Callable[[], int] = time.monotonic_ns):
        self.peer = peer
        self.handler = handler
        self.tls = tls
        self.limits = limits
        self.shutdown = shutdown
        self.now_ns = now_ns
        self.scheme = Case("HTTPS" if tls is not None else "HTTP")
        sock.setblocking(False)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # the client is gone already; the first read will say so
        shared = SharedSocket(sock)
        self.tcp_in = TcpInput(shared)
        self.tcp_out = TcpOutput(shared)
        shared.release()  # the streams keep the socket open
        self.session: TlsSession | None = None
        self.tls_output: TlsOutput | None = None
        #: Requests answered on this connection.
        self.requests = 0

    def run(self) -> None:
        graceful = False
        try:
            streams = self._handshake() if self.tls is not None else (self.tcp_in, self.tcp_out)
            if streams is None:
                # A refused handshake still closes gracefully: its alert goes
                # out before FIN, and the client's bytes are read rather than
                # answered with a reset that could overtake the alert.
                graceful = True
            else:
                graceful = self._serve(*streams)
        except Exception:  # a host defect ends this connection only
            log.exception("%s: internal host error", self.peer)
        finally:
            self._close(graceful)

    def _wait(self, spec: WaitSpec, *, drain: bool = False) -> None:
        wait(spec, self.now_ns, self.shutdown.abort_fd,
             self.shutdown.drain_fd if drain else None)

    # -- TLS ---------------------------------------------------------------------------
    def _handshake(self) -> tuple[InputStream, OutputStream] | None:
        assert self.tls is not None
        session = self.session = TlsSession(
            self.tls.choose, self.tcp_in, self.tcp_out, server_name=None, run_until=Point.DONE,
            now_ns=self.now_ns, handshake_timeout_s=self.tls.policy.handshake_timeout,
            linger=lambda work: None)  # this connection delivers its own goodbye (_close)
        session.pump()
        while not session.handshake_done:
            if session.failure is not None:
                log.info("%s: %s", self.peer, session.error_message())
                return None
            if self.shutdown.draining:
                return None
            self._wait(session.wait_spec(deadline=True), drain=True)
            session.pump()
        self.tls_output = TlsOutput(session)
        return TlsInput(session), self.tls_output

    def _classify(self, error: StreamFailed) -> HttpFailure:
        """What a failed transport stream means to the guest reading a body."""
        session = self.session
        cause = session.failure.error if session is not None and session.failure else error
        if isinstance(cause, TlsFailure):
            if cause.kind in (ErrorKind.TRUNCATED, ErrorKind.EOF):
                return errors.failure("connection-terminated", cause.message)
            return errors.from_tls(cause)
        return errors.from_transport(cause)

    # -- requests ----------------------------------------------------------------------
    def _serve(self, transport_in: InputStream, transport_out: OutputStream) -> bool:
        """Requests until the connection cannot or need not carry more; True
        when it may close gracefully."""
        conn = H1Connection(h11.SERVER, transport_in, transport_out, now_ns=self.now_ns,
                            classify=self._classify, max_head_size=self.limits.max_head_size)
        while True:
            head = self._receive_head(conn)
            if head is None:
                return conn.write_failure is None
            exchange = Exchange(conn, head, self.scheme, limits=self.limits,
                                shutdown=self.shutdown, now_ns=self.now_ns)
            self.requests += 1
            try:
                self.handler(exchange)
            except Exception:  # the handler promised not to raise: a host defect
                log.exception("%s: internal host error in the handler", exchange)
                exchange.handler_failed("internal host error")
            if not exchange.finish() or self.shutdown.draining:
                return exchange.aborted is None
            conn.start_next_cycle()

    def _receive_head(self, conn: H1Connection) -> h11.Request | None:
        """The next request head, or None when the connection should close
        (the client left or idled, the head was late, bad or too large: the
        last two are answered first)."""
        limits = self.limits
        # The last body's read deadline is over; the head's are kept here.
        conn.expect_within(None, lambda: errors.internal_error("no read deadline"))
        now = self.now_ns()
        first = self.requests == 0
        deadline = now + int((limits.head_timeout if first else limits.idle_timeout) * NS_PER_S)
        started = first  # the first head's deadline runs from the start
        while True:
            conn.flush()  # what is left of the last response
            conn.receive()
            if isinstance(conn.head, h11.Request):
                return conn.head
            failure = conn.read_failure
            if failure is not None:
                status = _REFUSALS.get(failure.code.tag)
                if status is None or conn.peer_closed or conn.write_failure is not None:
                    return None  # the client left (between requests, or mid-head)
                log.info("%s: %s; answered %d", self.peer, failure.message, status)
                send_plain(conn, status, closing=True)
                self._send_all(conn)
                return None
            if conn.received and not started:
                started = True
                deadline = self.now_ns() + int(limits.head_timeout * NS_PER_S)
            if self.now_ns() >= deadline:
                if conn.received:
                    log.info("%s: request head not complete within %g s; closed", self.peer,
                             limits.head_timeout)
                return None
            idle = not conn.received
            if self.shutdown.draining and idle:
                return None
            spec = conn.wait_spec()
            self._wait(WaitSpec(spec.fds, deadline), drain=idle)

    def _send_all(self, conn: H1Connection) -> None:
        """Hand the wire buffer to the transport (the server's own short answers)."""
        deadline = self.now_ns() + int(LINGER_S * NS_PER_S)
        conn.flush()
        while conn.wire and conn.write_failure is None and self.now_ns() < deadline:
            self._wait(WaitSpec(conn.transport_out.wait_on().fds, deadline))
            conn.flush()

    # -- closing -----------------------------------------------------------------------
    def close(self) -> None:
        """Cut the connection without serving it."""
        self._close(graceful=False)

    def _close(self, graceful: bool) -> None:
        """Deliver what is queued (close_notify first, over TLS), send FIN,
        and read and drop what the client still sends, all within LINGER_S;
        then release the socket. Cut at once when not `graceful` or when
        the server aborts."""
        deadline = self.now_ns() + int(LINGER_S * NS_PER_S)
        if graceful and not self.shutdown.aborted:
            if self.tls_output is not None:
                self.tls_output.close_notify()
            graceful = self._deliver_queued(deadline)
            if graceful:
                self._drop_input(deadline)
        if not graceful:
            # A reset, so that what the kernel still holds for a client that
            # does not read is dropped rather than trickled out for ever.
            try:
                self.tcp_out.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                             struct.pack("ii", 1, 0))
            except OSError:
                pass  # already gone
        self.tcp_out.pending.clear()  # nothing is left to a background sender
        self.tcp_in.close()
        self.tcp_out.close()

    def _deliver_queued(self, deadline: int) -> bool:
        """Push the TLS session's records and the socket's buffer out; True
        once all went, then FIN is sent."""
        tcp_out = self.tcp_out
        while not self.shutdown.aborted and self.now_ns() < deadline:
            try:
                if self.session is not None:
                    self.session.pump()
                    if self.session.outgoing:
                        self._wait(WaitSpec(tcp_out.wait_on().fds, deadline))
                        continue
                tcp_out.flush()
                if not tcp_out.pending:
                    tcp_out.send_fin()
                    return True
            except (StreamClosed, StreamFailed, OSError):
                return False
            self._wait(WaitSpec(tcp_out.wait_on().fds, deadline))
        return False

    def _drop_input(self, deadline: int) -> None:
        while not self.shutdown.aborted and self.now_ns() < deadline:
            try:
                if not self.tcp_in.read(64 * 1024):
                    self._wait(WaitSpec(self.tcp_in.wait_on().fds, deadline))
            except (StreamClosed, StreamFailed):
                return
