"""HTTP/1.1 on h11 over a pair of host streams, for a client or a server.

Theory of operation
-------------------
h11 knows what the bytes of an HTTP/1.1 message mean and does no I/O;
`runtime.streams` are non-blocking byte streams (plain TCP, or the
plaintext side of a `TlsSession`). `H1Connection` sits between them and
never blocks: every call does what can be done now and returns.

    peer bytes --transport_in--> h11 --> head, body buffer, trailers
    head/Data/EndOfMessage --> h11 --> wire buffer --transport_out--> peer

Receiving is pulled by whoever wants the peer's message (`receive`): the
head, then body bytes into a buffer, then the trailers. The transport is
read only while that buffer holds less than BODY_BUFFER bytes (so it never
holds more than that plus one read): a reader that stops reading holds the
peer back (TCP flow control) instead of filling the host's memory, and a
connection whose buffer is full does not ask to be woken for bytes nobody
would take (`wants_input`). Sending goes through the wire buffer, which
takes at most WIRE_BUDGET bytes beyond what the transport has accepted;
`send_body_from` moves a guest's `BodyPipe` into the message only as fast
as that allows.

The role only picks h11's side: a client sends a request and receives a
response, a server the other way round; `context` ("request" or
"response") names the message received, for error codes.

Failures are sticky and kept per direction: `read_failure` ends what can
be received, `write_failure` what can be sent, so that a response that
arrived before the peer stopped reading is still delivered. A read
timeout (`expect_within`) is checked whenever the reader finds nothing to
read: it measures the time since the peer last sent bytes or the reader
last took some, i.e. time spent waiting on the peer.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

import h11

from ..runtime.futures import Ready
from ..runtime.poll import WaitSpec, earliest
from ..runtime.streams import InputStream, OutputStream, StreamClosed, StreamFailed
from ..runtime.values import Case
from . import errors
from .bodies import BodyPipe, HttpFailed, IncomingBody, take_front
from .errors import HttpFailure
from .fields import Fields
from .messages import IncomingRequest, OutgoingResponse, method_case

#: Received body bytes kept before the transport is left unread.
BODY_BUFFER = 64 * 1024
#: Bytes h11 produced that the transport has not taken, before the body waits.
WIRE_BUDGET = 64 * 1024
#: Most bytes one transport read asks for.
READ_SIZE = 64 * 1024
#: Largest message head accepted from the peer.
MAX_HEAD_SIZE = 64 * 1024

#: Maps a failed transport stream to the HTTP failure it means.
Classify = Callable[[StreamFailed], HttpFailure]


class H1Connection:
    """One HTTP/1.1 connection over `transport_in`/`transport_out`."""

    def __init__(self, role: type[h11.CLIENT] | type[h11.SERVER], transport_in: InputStream,
                 transport_out: OutputStream, *, now_ns: Callable[[], int],
                 classify: Classify = errors.from_transport,
                 max_head_size: int = MAX_HEAD_SIZE):
        self.h11 = h11.Connection(role, max_incomplete_event_size=max_head_size)
        self.max_head_size = max_head_size
        self.context = "response" if role is h11.CLIENT else "request"
        self.transport_in = transport_in
        self.transport_out = transport_out
        self.now_ns = now_ns
        self.classify = classify
        self.wire = bytearray()
        self.read_failure: HttpFailure | None = None
        self.write_failure: HttpFailure | None = None
        self.peer_closed = False
        #: Bytes the transport has taken, all messages together (a server
        #: tells a client that stopped reading from one that reads slowly).
        self.bytes_sent = 0
        self._new_message()
        self._timeout_ns: int | None = None
        self._timeout_failure: Callable[[], HttpFailure] | None = None
        self._progress_ns = now_ns()

    def _new_message(self) -> None:
        #: The peer's Request or Response, once its head is in.
        self.head: h11.Request | h11.Response | None = None
        self.body = bytearray()
        #: The peer's trailers once its message is complete ([] if none).
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.discarding = False
        self.received = 0

    @property
    def message_done(self) -> bool:
        return self.trailers is not None

    # -- receiving -------------------------------------------------------------------
    def expect_within(self, timeout_ns: int | None, failure: Callable[[], HttpFailure]) -> None:
        """From now on, fail reading with `failure()` after waiting
        `timeout_ns` on the peer (None: no limit)."""
        self._timeout_ns = timeout_ns
        self._timeout_failure = failure
        self._progress_ns = self.now_ns()

    def receive(self) -> None:
        """Take in what the peer has sent, as far as the body buffer has room."""
        progressed = False
        while (self.read_failure is None and not self.message_done
               and (len(self.body) < BODY_BUFFER or self.discarding)):
            event = self._next_event()
            if event is None:
                break
            progressed = True
            if isinstance(event, (h11.Request, h11.Response)):
                if head_size(event) > self.max_head_size:
                    # h11 bounds only a head still arriving, not one that
                    # came whole in one read.
                    self.read_failure = self._protocol_failure(h11.RemoteProtocolError(
                        f"the {self.context} head is larger than {self.max_head_size} bytes",
                        error_status_hint=431))
                    break
                self.head = event
            elif isinstance(event, h11.Data):
                if not self.discarding:
                    self.body += event.data
            elif isinstance(event, h11.EndOfMessage):
                self.trailers = list(event.headers)
            elif isinstance(event, h11.ConnectionClosed):
                self._closed_early()
        if progressed:
            self._progress_ns = self.now_ns()
        elif self._waiting_on_peer():
            self._check_timeout()

    def _next_event(self) -> h11.Event | None:
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as error:
                self.read_failure = self._protocol_failure(error)
                return None
            if event is h11.NEED_DATA:
                if not self._read_transport():
                    return None
            elif event is h11.PAUSED:
                return None
            elif isinstance(event, h11.Event) and not isinstance(event,
                                                               h11.InformationalResponse):
                return event  # a 1xx is skipped: the final response follows

    def _read_transport(self) -> bool:
        """Feed h11 what the transport has; False if it has nothing now."""
        if self.peer_closed:
            return False
        try:
            data = self.transport_in.read(READ_SIZE)
        except StreamClosed:
            data = b""
            self.peer_closed = True
        except StreamFailed as error:
            self.read_failure = self.classify(error)
            return False
        if not data and not self.peer_closed:
            return False
        self.received += len(data)
        self.h11.receive_data(data)
        return True

    def _protocol_failure(self, error: h11.RemoteProtocolError) -> HttpFailure:
        if self.peer_closed and not self.received:
            return self._nothing_received()
        return errors.from_remote_protocol(error, self.context, cut_short=self.peer_closed)

    def _closed_early(self) -> None:
        """h11 saw the connection close where no message was due."""
        if not self.message_done:
            self.read_failure = self._nothing_received()

    def _nothing_received(self) -> HttpFailure:
        return errors.failure("connection-terminated",
                              f"the peer closed the connection before sending a {self.context}")

    def _waiting_on_peer(self) -> bool:
        return (self.read_failure is None and not self.message_done
                and (self.discarding or not self.body))

    def _check_timeout(self) -> None:
        if (self._timeout_ns is not None and self._timeout_failure is not None
                and self.now_ns() >= self._progress_ns + self._timeout_ns):
            self.read_failure = self._timeout_failure()

    def read_deadline_ns(self) -> int | None:
        if self._timeout_ns is None or not self._waiting_on_peer():
            return None
        return self._progress_ns + self._timeout_ns

    # -- the body, as a reader sees it ----------------------------------------------
    def read_body(self, max_bytes: int) -> bytes:
        """See `bodies.BodySource.read_body`."""
        if not self.body:
            self.receive()
        if self.body:
            self._progress_ns = self.now_ns()
            return take_front(self.body, max_bytes)
        if self.message_done:
            raise StreamClosed()
        if self.read_failure is not None:
            raise self.read_failure.stream_error()
        return b""

    def body_ready(self) -> bool:
        self.receive()
        return bool(self.body) or self.message_done or self.read_failure is not None

    def skip_body(self) -> None:
        """Read the rest of the message without keeping its body (the
        reader wants only the trailers, or nothing)."""
        self.discarding = True
        self.body.clear()
        self.receive()

    # -- sending ---------------------------------------------------------------------
    def send(self, event: h11.Event) -> None:
        """Queue an event's bytes and push them towards the peer."""
        if self.write_failure is not None:
            return
        try:
            data = self.h11.send(event)
        except h11.LocalProtocolError as error:
            # Our own message is malformed: nothing more can be sent, and
            # the peer will not answer what it never got.
            self.write_failure = errors.internal_error(f"cannot send this message: {error}")
            self.read_failure = self.read_failure or self.write_failure
            return
        if data:
            self.wire += data
        self.flush()

    def flush(self) -> None:
        """Hand the wire buffer to the transport as far as it takes it. Done
        even with nothing queued: that lets a buffering transport (TLS,
        TCP) push out what it still holds."""
        if self.write_failure is not None:
            return
        try:
            permit = self.transport_out.check_write()
            if permit and self.wire:
                chunk = take_front(self.wire, permit)
                self.transport_out.write(chunk)
                self.bytes_sent += len(chunk)
        except StreamClosed:
            self.write_failure = errors.failure(
                "connection-terminated", "the peer no longer takes what is sent")
        except StreamFailed as error:
            self.write_failure = self.classify(error)

    def wire_room(self) -> int:
        return max(0, WIRE_BUDGET - len(self.wire))

    def send_body_from(self, pipe: BodyPipe) -> bool:
        """Move what the guest wrote into the message while the wire has
        room; end the message once the pipe is finished. True once the
        whole body (and its trailers) has been queued."""
        self.flush()
        if self.h11.our_state is not h11.SEND_BODY:
            return True  # ended already
        while pipe.buffer and self.write_failure is None and (room := self.wire_room()):
            self.send(h11.Data(data=pipe.take(room)))
        if pipe.ended and self.write_failure is None:
            trailers = pipe.trailers.wire() if pipe.trailers is not None else []
            self.send(h11.EndOfMessage(headers=trailers))
            return True
        return False

    @property
    def sent_everything(self) -> bool:
        """The whole message is queued and the transport has taken it."""
        return self.h11.our_state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED) and not self.wire

    # -- readiness -------------------------------------------------------------------
    def wants_input(self) -> bool:
        """Whether `receive` would read the transport now (not while the
        body buffer is full: waking for bytes nobody takes would spin)."""
        return (self.read_failure is None and not self.message_done and not self.peer_closed
                and (self.discarding or len(self.body) < BODY_BUFFER))

    def wait_spec(self) -> WaitSpec:
        """What could move this connection on: the transport taking bytes,
        the peer's bytes when they are wanted, and the read deadline."""
        fds = self.transport_out.wait_on().fds
        deadline_ns = self.read_deadline_ns()
        if self.wants_input():
            # A TLS transport that already took the peer's bytes off the
            # socket (while sending) is due at once: its deadline says so.
            incoming = self.transport_in.wait_on()
            fds += incoming.fds
            deadline_ns = earliest(deadline_ns, incoming.deadline_ns)
        return WaitSpec(fds=fds, deadline_ns=deadline_ns)

    def start_next_cycle(self) -> None:
        """A server's next request on a kept-alive connection (h11's cycle)."""
        self.h11.start_next_cycle()
        self._new_message()


def head_size(head: h11.Request | h11.Response) -> int:
    """About how many bytes `head` took on the wire (its start line and
    fields, each with its separators)."""
    if isinstance(head, h11.Request):
        start = len(head.method) + len(head.target) + len(b"  HTTP/1.1\r\n")
    else:
        start = len(head.reason) + len(b"HTTP/1.1 000 \r\n")
    return start + sum(len(name) + len(value) + len(b": \r\n")
                       for name, value in head.headers.raw_items()) + len(b"\r\n")


class MessageBody:
    """The peer's message body on an `H1Connection`, as `bodies.BodySource`:
    what `incoming-body` and its stream and trailers are made of. The
    connection's owner moves it along (`pump`), says what it waits on
    (`wait_spec`) and learns when the guest gives the message up (`release`)."""

    def __init__(self, conn: H1Connection, *, pump: Callable[[], None],
                 wait_spec: Callable[[], WaitSpec], release: Callable[[], None]):
        self.conn = conn
        self._pump = pump
        self._wait_spec = wait_spec
        self._release = release

    def read_body(self, max_bytes: int) -> bytes:
        self._pump()
        return self.conn.read_body(max_bytes)

    def body_ready(self) -> bool:
        self._pump()
        return self.conn.body_ready()

    def body_wait_spec(self) -> WaitSpec:
        return self._wait_spec()

    def trailers(self) -> Ready | HttpFailed | None:
        conn = self.conn
        if not conn.discarding:
            conn.skip_body()  # the body's stream is gone: what is left goes unread
        self._pump()
        if conn.trailers is not None:
            return Ready(received_fields(conn.trailers) if conn.trailers else None)
        if conn.read_failure is not None:
            return HttpFailed.of(conn.read_failure)
        return None

    def trailers_wait_spec(self) -> WaitSpec:
        return self._wait_spec()

    def release(self) -> None:
        self._release()


def received_fields(pairs) -> Fields:
    """A received head's or trailers' fields, as the guest sees them."""
    return Fields.received((name.decode("latin-1"), bytes(value)) for name, value in pairs)


def incoming_request(head: h11.Request, scheme: Case, body: IncomingBody) -> IncomingRequest:
    """The `incoming-request` a server hands its handler for a received head.
    The authority is the Host header's (which, like the other headers the
    host owns, the guest does not see among the headers)."""
    host = next((value for name, value in head.headers if name == b"host"), None)
    return IncomingRequest(
        method_case(head.method.decode("ascii")), head.target.decode("ascii"), scheme,
        host.decode("latin-1") if host is not None else None,
        received_fields(head.headers.raw_items()), body)


def response_head(response: OutgoingResponse,
                  extra_headers: list[tuple[bytes, bytes]] | None = None) -> h11.Response:
    """The head a server sends for a handler's `outgoing-response`, with the
    standard reason phrase and any headers the server adds (`extra_headers`:
    ones the guest may not set, such as Connection). Without a
    Content-Length, h11 frames the body (chunked for HTTP/1.1 clients).
    Raises h11.LocalProtocolError for a status that cannot be a final
    response (1xx)."""
    return h11.Response(status_code=response.status,
                        headers=[*response.headers.wire(), *(extra_headers or ())],
                        reason=reason_phrase(response.status))


def reason_phrase(status: int) -> bytes:
    """RFC 9110's reason phrase for `status`, or none for a code it does not name."""
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""
