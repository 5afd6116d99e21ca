"""h1.H1Connection in both roles, talking to itself over in-memory pipes:
heads, streamed bodies in bounded buffers, trailers, failures and read
timeouts, and the server side's resources (incoming-request, the response
through response-outparam and outgoing-response) built on it."""

from __future__ import annotations

import h11
import pytest

from wasi_tls_host.http import h1
from wasi_tls_host.http.bodies import BodyPipe, IncomingBody
from wasi_tls_host.http.errors import HttpStreamFailed
from wasi_tls_host.http.fields import Fields
from wasi_tls_host.http.messages import OutgoingResponse, ResponseOutparam, method_case
from wasi_tls_host.runtime.futures import Ready
from wasi_tls_host.runtime.poll import NEVER, READ, WaitSpec
from wasi_tls_host.runtime.streams import InputStream, Pipe, StreamClosed
from wasi_tls_host.runtime.values import Case, Err, Ok


class Clock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock():
    return Clock()


def pair(clock, capacity: int = 1 << 20):
    """A client and a server connection joined by two pipes."""
    upstream, downstream = Pipe(capacity), Pipe(capacity)
    client = h1.H1Connection(h11.CLIENT, downstream.input, upstream.output, now_ns=clock)
    server = h1.H1Connection(h11.SERVER, upstream.input, downstream.output, now_ns=clock)
    return client, server, upstream, downstream


def request(target: str = "/", *headers: tuple[bytes, bytes]) -> h11.Request:
    return h11.Request(method="POST", target=target,
                       headers=[(b"host", b"example.com:8080"), *headers])


def drain_body(conn: h1.H1Connection) -> bytes:
    received = bytearray()
    while True:
        try:
            received += conn.read_body(1 << 20)
        except StreamClosed:
            return bytes(received)


def test_a_request_with_a_streamed_body_and_trailers(clock):
    client, server, _, _ = pair(clock)
    client.send(request("/upload?x=1", (b"transfer-encoding", b"chunked")))
    server.receive()
    assert server.head.target == b"/upload?x=1"
    assert server.read_body(10) == b""  # nothing yet: not an end
    client.send(h11.Data(data=b"hello "))
    client.send(h11.Data(data=b"world"))
    client.send(h11.EndOfMessage(headers=[(b"x-sum", b"42")]))
    assert drain_body(server) == b"hello world"
    assert server.trailers == [(b"x-sum", b"42")]
    assert client.sent_everything


def test_the_server_answers_and_the_client_reads(clock):
    client, server, _, _ = pair(clock)
    client.send(request())
    client.send(h11.EndOfMessage())
    server.receive()
    server.send(h11.Response(status_code=201, headers=[(b"content-length", b"3")]))
    server.send(h11.Data(data=b"abc"))
    server.send(h11.EndOfMessage())
    client.receive()
    assert client.head.status_code == 201
    assert drain_body(client) == b"abc"
    assert client.trailers == []


def test_the_body_buffer_holds_the_peer_back(clock):
    client, server, upstream, _ = pair(clock, capacity=4 * h1.BODY_BUFFER)
    client.send(request("/", (b"content-length", str(3 * h1.BODY_BUFFER).encode())))
    for _ in range(3):
        client.send(h11.Data(data=bytes(h1.BODY_BUFFER)))
    server.receive()
    assert h1.BODY_BUFFER <= len(server.body) < h1.BODY_BUFFER + h1.READ_SIZE
    assert upstream.buffer, "the rest stays in the transport, unread"
    assert not server.wants_input()
    server.read_body(len(server.body))
    assert server.wants_input()


def test_the_wire_buffer_bounds_what_a_body_pipe_moves(clock):
    client, server, _, _ = pair(clock, capacity=1024)
    pipe = BodyPipe(capacity=1 << 20)
    pipe.buffer += bytes(300_000)
    client.send(request("/", (b"transfer-encoding", b"chunked")))
    client.send_body_from(pipe)
    assert len(client.wire) <= h1.WIRE_BUDGET + 64  # a chunk's size line and CRLF
    assert pipe.buffer, "the pipe keeps what the wire has no room for"
    received = bytearray()
    while not server.message_done:
        server.receive()
        if server.body:
            received += server.read_body(1 << 20)
        pipe.finished = not pipe.buffer
        client.send_body_from(pipe)
    assert len(received) == 300_000


def test_a_response_cut_short_is_incomplete(clock):
    client, server, _, downstream = pair(clock)
    client.send(request())
    client.send(h11.EndOfMessage())
    server.receive()
    server.send(h11.Response(status_code=200, headers=[(b"content-length", b"10")]))
    server.send(h11.Data(data=b"01234"))
    downstream.output.close()
    with pytest.raises(HttpStreamFailed) as caught:
        drain_body(client)
    assert caught.value.http_code == Case("HTTP-response-incomplete")
    assert "peer closed connection without sending complete message body" in caught.value.message


def test_nothing_at_all_is_a_terminated_connection(clock):
    client, _, _, downstream = pair(clock)
    client.send(request())
    client.send(h11.EndOfMessage())
    downstream.output.close()
    client.receive()
    assert client.read_failure.code == Case("connection-terminated")


def test_a_head_over_the_limit(clock):
    upstream, downstream = Pipe(1 << 20), Pipe(1 << 20)
    client = h1.H1Connection(h11.CLIENT, downstream.input, upstream.output, now_ns=clock,
                             max_head_size=1024)
    client.send(request())
    client.send(h11.EndOfMessage())
    downstream.output.write(b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * 4096)  # and more to come
    client.receive()
    assert client.read_failure.code == Case("HTTP-response-header-section-size", None)


def test_garbage_is_a_protocol_error(clock):
    client, _, _, downstream = pair(clock)
    client.send(request())
    client.send(h11.EndOfMessage())
    downstream.output.write(b"SSH-2.0-OpenSSH\r\n\r\n")
    client.receive()
    assert client.read_failure.code == Case("HTTP-protocol-error")


def test_read_timeout_counts_only_time_spent_waiting_on_the_peer(clock):
    client, server, _, _ = pair(clock)
    client.send(request())
    client.send(h11.EndOfMessage())
    client.expect_within(1000, lambda: h1.errors.failure("connection-read-timeout", "slow"))
    assert client.wait_spec().deadline_ns == 1000
    clock.now = 999
    client.receive()
    assert client.read_failure is None
    server.receive()
    server.send(h11.Response(status_code=200, headers=[(b"content-length", b"4")]))
    server.send(h11.Data(data=b"ab"))
    clock.now = 5000  # the reader was away; bytes were waiting for it
    client.receive()
    assert client.read_failure is None
    assert client.read_body(10) == b"ab"
    assert client.wait_spec().deadline_ns == 6000
    assert client.read_body(10) == b""
    clock.now = 6000
    with pytest.raises(HttpStreamFailed) as caught:
        client.read_body(10)
    assert caught.value.http_code == Case("connection-read-timeout")


def test_sending_after_the_peer_went_away(clock):
    client, _, upstream, _ = pair(clock)
    upstream.input.close()
    client.send(request())
    assert client.write_failure.code == Case("connection-terminated")
    assert client.read_failure is None, "what the peer sent may still be read"


def test_a_message_the_host_cannot_send_breaks_both_directions(clock):
    client, _, _, _ = pair(clock)
    client.send(h11.Data(data=b"body before any head"))
    assert client.write_failure.code.tag == "internal-error"
    assert client.read_failure is client.write_failure


def test_wait_spec_of_pipes_is_never(clock):
    client, _, _, _ = pair(clock)
    assert client.wait_spec() == NEVER


class DueTransport(InputStream):
    """A transport input that already holds the peer's bytes and says so
    with a deadline of now, as a TLS stream does once it took ciphertext
    off the socket while sending."""

    def __init__(self, due_ns: int):
        self.due_ns = due_ns

    def wait_on(self) -> WaitSpec:
        return WaitSpec(fds=((7, READ),), deadline_ns=self.due_ns)


def test_a_transport_that_is_due_now_wakes_the_reader_before_its_read_deadline(clock):
    upstream = Pipe(1 << 20)
    client = h1.H1Connection(h11.CLIENT, DueTransport(due_ns=42), upstream.output, now_ns=clock)
    client.send(request())
    client.send(h11.EndOfMessage())
    client.expect_within(1000, lambda: h1.errors.failure("connection-read-timeout", "slow"))
    spec = client.wait_spec()
    assert spec.deadline_ns == 42, "a wait on the fd alone would sleep past bytes in hand"
    assert (7, READ) in spec.fds


# -- the server side's resources --------------------------------------------------------

def test_incoming_request_from_a_head(clock):
    client, server, _, _ = pair(clock)
    client.send(h11.Request(method="PATCH", target="/a?b", headers=[
        (b"Host", b"example.com:8080"), (b"X-One", b"1"), (b"Connection", b"keep-alive"),
        (b"Content-Length", b"2")]))
    client.send(h11.Data(data=b"hi"))
    client.send(h11.EndOfMessage())
    server.receive()
    released = []
    body = h1.MessageBody(server, pump=server.receive, wait_spec=server.wait_spec,
                          release=lambda: released.append(True))
    incoming = h1.incoming_request(server.head, Case("HTTPS"), IncomingBody(body))
    assert incoming.method == Case("patch")
    assert incoming.path_with_query == "/a?b"
    assert incoming.authority == "example.com:8080"
    assert incoming.scheme == Case("HTTPS")
    assert incoming.headers.entries() == [("X-One", b"1"), ("Content-Length", b"2")]
    assert not incoming.headers.mutable
    stream_body = incoming.consume()
    assert drain_body_stream(stream_body) == b"hi"
    trailers = stream_body.finish()
    assert trailers.ready()
    assert trailers.get() == Ok(Ok(None))
    trailers.close()
    assert released == [True]


def drain_body_stream(body: IncomingBody) -> bytes:
    stream = body.stream()
    received = bytearray()
    while True:
        try:
            received += stream.read(1 << 20)
        except StreamClosed:
            return bytes(received)


def test_methods_from_the_wire():
    assert method_case("GET") == Case("get")
    assert method_case("get") == Case("other", "get")
    assert method_case("PURGE") == Case("other", "PURGE")


def test_a_handlers_response_goes_out_with_its_body_and_trailers(clock):
    client, server, _, _ = pair(clock)
    client.send(request())
    client.send(h11.EndOfMessage())
    server.receive()
    delivered = []
    outparam = ResponseOutparam(delivered.append)
    response = OutgoingResponse(Fields.from_guest([("x-answer", b"yes")]))
    response.set_status(202)
    body = response.take_body()
    outparam.set(Ok(response))
    (result,) = delivered
    sent = result.value
    server.send(h1.response_head(sent))
    stream = body.write()
    stream.write(b"streamed")
    body.finish(Fields.from_guest([("x-trailer", b"t")]))
    assert server.send_body_from(body.pipe)
    client.receive()
    assert client.head.status_code == 202
    assert (b"transfer-encoding", b"chunked") in list(client.head.headers)
    assert drain_body(client) == b"streamed"
    assert client.trailers == [(b"x-trailer", b"t")]


def test_an_outparam_dropped_unset_answers_with_an_error():
    delivered = []
    ResponseOutparam(delivered.append).close()
    assert delivered == [Err(Case("internal-error", "the handler dropped its "
                                  "response-outparam without setting a response"))]


def test_an_outparam_set_once_is_not_answered_again():
    delivered = []
    outparam = ResponseOutparam(delivered.append)
    outparam.set(Err(Case("HTTP-request-denied")))
    outparam.close()
    assert delivered == [Err(Case("HTTP-request-denied"))]


def test_trailers_future_skips_an_unread_body(clock):
    client, server, _, _ = pair(clock)
    client.send(request("/", (b"transfer-encoding", b"chunked")))
    for _ in range(5):
        client.send(h11.Data(data=bytes(h1.BODY_BUFFER)))
    client.send(h11.EndOfMessage(headers=[(b"x-done", b"1")]))
    body = h1.MessageBody(server, pump=server.receive, wait_spec=server.wait_spec,
                          release=lambda: None)
    outcome = body.trailers()
    assert isinstance(outcome, Ready)
    assert outcome.value.entries() == [("x-done", b"1")]
