"""The host's HTTP client (outgoing-handler.handle and its exchange) against
loopback servers in this process: where a request may go, how its body
streams around `handle`, what the future gives, how giving a response up
closes its connection, deadlines, and which error-code each failure is."""

from __future__ import annotations

import errno
import socket
import threading

import pytest
from http_peers import H11Server, RawServer, body_bytes, read_head, sha256

from wasi_tls_host.config import HostConfig, NetRule
from wasi_tls_host.http import errors, outgoing_handler, types
from wasi_tls_host.http.client import DEFAULT_CONNECT_TIMEOUT_NS, Target, Timeouts
from wasi_tls_host.http.fields import Fields
from wasi_tls_host.http.messages import OutgoingRequest, RequestOptions
from wasi_tls_host.io import streams as io_streams
from wasi_tls_host.runtime.context import WasiCtx
from wasi_tls_host.runtime.errors import ErrorValue
from wasi_tls_host.runtime.values import Case, Err, Ok
from wasi_tls_host.tls.errors import ErrorKind, TlsFailure


@pytest.fixture
def ctx():
    context = WasiCtx(HostConfig(allow_net=[NetRule.parse("127.0.0.1")]))
    yield context
    context.close()


@pytest.fixture
def server():
    peer = H11Server()
    yield peer
    peer.close()


GET = Case("get")
HTTP = Case("HTTP")


def outgoing(port: int, path: str = "/", *, method: Case = GET, scheme: Case | None = HTTP,
             headers=(), host: str = "127.0.0.1"):
    request = OutgoingRequest(Fields.from_guest(headers))
    request.set_method(method)
    request.set_scheme(scheme)
    request.set_authority(f"{host}:{port}")
    request.set_path_with_query(path)
    return request


def response_of(ctx, future):
    ctx.wait_for(future)
    outcome = types.future_incoming_response_get(ctx, future)
    assert isinstance(outcome, Ok)
    return outcome.value


def read_all(ctx, response) -> bytes:
    body = types.incoming_response_consume(ctx, response)
    stream = types.incoming_body_stream(ctx, body).obj
    received = bytearray()
    while True:
        try:
            received += io_streams.blocking_read(ctx, stream, 1 << 16)
        except ErrorValue as error:
            assert error.payload == Case("closed")
            return bytes(received)


def write_all(ctx, stream, data: bytes) -> None:
    view = memoryview(data)
    while view:
        permit = io_streams.check_write(ctx, stream)
        if not permit:
            ctx.wait_for(stream)
            continue
        io_streams.write(ctx, stream, bytes(view[:permit]))
        view = view[permit:]


# -- where a request may go -----------------------------------------------------------

def test_targets():
    assert Target.of(outgoing(8080, "/x?y")) == Target(False, "127.0.0.1", 8080,
                                                      "127.0.0.1:8080", "/x?y")
    request = outgoing(443, "", scheme=None, host="example.com")
    request.set_authority("example.com")
    assert Target.of(request) == Target(True, "example.com", 443, "example.com", "/")
    request.set_authority("[::1]:81")
    request.set_path_with_query("no-slash")
    target = Target.of(request)
    assert (target.host, target.port, target.path, str(target)) == \
        ("::1", 81, "/no-slash", "https://[::1]:81")


@pytest.mark.parametrize("change, code", [
    (lambda request: request.set_authority(None), "HTTP-request-URI-invalid"),
    (lambda request: request.set_scheme(Case("other", "ftp")), "HTTP-protocol-error"),
])
def test_requests_that_cannot_be_sent(ctx, change, code):
    request = outgoing(80)
    change(request)
    with pytest.raises(ErrorValue) as caught:
        outgoing_handler.handle(ctx, request, None)
    assert caught.value.payload.tag == code


def test_no_network_denies_before_any_lookup():
    context = WasiCtx(HostConfig())
    try:
        request = outgoing(80, host="example.com")
        request.set_authority("example.com")
        with pytest.raises(ErrorValue) as caught:
            outgoing_handler.handle(context, request, None)
        assert caught.value.payload == Case("HTTP-request-denied")
    finally:
        context.close()


def test_an_address_outside_the_allow_list(server):
    context = WasiCtx(HostConfig(allow_net=[NetRule.parse(f"127.0.0.1:{server.port}")]))
    try:
        with pytest.raises(ErrorValue) as caught:
            outgoing_handler.handle(context, outgoing(server.port, host="127.0.0.2"), None)
        assert caught.value.payload == Case("HTTP-request-denied")
        # A name is looked up first; what it resolves to is what is checked.
        request = outgoing(server.port)
        request.set_authority(f"localhost:{server.port + 1}")
        future = outgoing_handler.handle(context, request, None)
        assert response_of(context, future) == Err(Case("HTTP-request-denied"))
    finally:
        context.close()
    assert server.seen == []


def test_a_declared_length_needs_a_body(ctx, server):
    request = outgoing(server.port, headers=[("content-length", b"3")])
    with pytest.raises(ErrorValue) as caught:
        outgoing_handler.handle(ctx, request, None)
    assert caught.value.payload == Case("HTTP-request-body-size", 0)


# -- the future and the response ---------------------------------------------------

def test_the_future_and_the_response(ctx, server):
    future = outgoing_handler.handle(ctx, outgoing(server.port, "/bytes/70000"), None)
    response = response_of(ctx, future).value
    assert types.future_incoming_response_get(ctx, future) == Err()
    assert types.incoming_response_status(ctx, response) == 200
    headers = types.incoming_response_headers(ctx, response)
    assert headers.get("content-length") == [b"70000"]
    assert read_all(ctx, response) == body_bytes(70000)
    (seen,) = server.seen
    assert seen.header("host") == f"127.0.0.1:{server.port}"


def test_a_body_written_around_handle(ctx, server):
    request = outgoing(server.port, "/sha256", method=Case("post"))
    body = types.outgoing_request_body(ctx, request)
    stream = types.outgoing_body_write(ctx, body).obj
    write_all(ctx, stream, b"before handle, ")
    future = outgoing_handler.handle(ctx, request, None)
    payload = body_bytes(300_000)
    write_all(ctx, stream, payload)
    stream.close()
    types.outgoing_body_finish(ctx, body, Fields.from_guest([("x-t", b"1")]))
    response = response_of(ctx, future).value
    headers = types.incoming_response_headers(ctx, response)
    assert headers.get("x-body-sha256") == [sha256(b"before handle, " + payload).encode()]
    assert headers.get("x-trailers") == [b"x-t=1"]


def test_post_without_a_body_says_its_length(ctx, server):
    future = outgoing_handler.handle(ctx, outgoing(server.port, "/sha256",
                                                   method=Case("post")), None)
    response_of(ctx, future)
    assert server.seen[0].header("content-length") == "0"


def test_trailers_of_a_response(ctx, server):
    future = outgoing_handler.handle(ctx, outgoing(server.port, "/chunked/1000"), None)
    response = response_of(ctx, future).value
    body = types.incoming_response_consume(ctx, response)
    trailers_future = types.incoming_body_finish(ctx, body)  # the body itself goes unread
    ctx.wait_for(trailers_future)
    trailers = types.future_trailers_get(ctx, trailers_future).value.value
    assert trailers.entries() == [("x-sha256", sha256(body_bytes(1000)).encode())]


class Watcher:
    """A server that reads what it is sent until the client closes, and says so."""

    def __init__(self, respond: bytes = b""):
        self.head_seen = threading.Event()
        self.closed = threading.Event()
        self.received = bytearray()

        def behave(sock):
            read_head(sock)
            self.head_seen.set()
            if respond:
                sock.sendall(respond)
            while data := sock.recv(65536):
                self.received += data
            self.closed.set()
        self.peer = RawServer(behave)
        self.port = self.peer.port

    def close(self):
        self.peer.close()


def test_dropping_the_future_closes_the_connection(ctx):
    watcher = Watcher()
    try:
        future = outgoing_handler.handle(ctx, outgoing(watcher.port), None)
        while not watcher.head_seen.wait(0.01):
            assert types.future_incoming_response_get(ctx, future) is None  # it pumps
        assert types.future_incoming_response_get(ctx, future) is None  # no answer yet
        future.close()
        assert watcher.closed.wait(10)
    finally:
        watcher.close()


def test_dropping_an_unread_body_closes_the_connection(ctx):
    watcher = Watcher(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + bytes(1000))
    try:
        future = outgoing_handler.handle(ctx, outgoing(watcher.port), None)
        response = response_of(ctx, future).value
        body = types.incoming_response_consume(ctx, response)
        response.close()
        assert not watcher.closed.wait(0.2), "the body still holds the connection"
        body.close()
        assert watcher.closed.wait(10)
    finally:
        watcher.close()


def test_a_request_body_dropped_unfinished_breaks_the_request(ctx):
    watcher = Watcher()
    try:
        request = outgoing(watcher.port, method=Case("put"))
        body = types.outgoing_request_body(ctx, request)
        stream = types.outgoing_body_write(ctx, body).obj
        future = outgoing_handler.handle(ctx, request, None)
        write_all(ctx, stream, b"partial")
        stream.close()
        body.close()
        outcome = response_of(ctx, future)
        assert outcome == Err(Case("HTTP-protocol-error"))
        assert watcher.closed.wait(10)
        assert not watcher.received.endswith(b"0\r\n\r\n"), "no last chunk: not complete"
    finally:
        watcher.close()


# -- deadlines and failures ------------------------------------------------------------

def test_timeouts_default_to_the_hosts():
    assert Timeouts.of(None).connect_ns == DEFAULT_CONNECT_TIMEOUT_NS
    chosen = Timeouts.of(RequestOptions(first_byte_timeout=5))
    assert (chosen.connect_ns, chosen.first_byte_ns) == (DEFAULT_CONNECT_TIMEOUT_NS, 5)


def test_first_byte_timeout(ctx):
    watcher = Watcher()
    try:
        future = outgoing_handler.handle(ctx, outgoing(watcher.port),
                                         RequestOptions(first_byte_timeout=200_000_000))
        assert response_of(ctx, future) == Err(Case("connection-read-timeout"))
    finally:
        watcher.close()


def test_connect_timeout_covers_the_handshake(ctx):
    watcher = Watcher()
    try:
        request = outgoing(watcher.port, scheme=Case("HTTPS"))
        future = outgoing_handler.handle(ctx, request,
                                         RequestOptions(connect_timeout=200_000_000))
        assert response_of(ctx, future) == Err(Case("connection-timeout"))
    finally:
        watcher.close()


def test_refused(ctx):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    future = outgoing_handler.handle(ctx, outgoing(port), None)
    assert response_of(ctx, future) == Err(Case("connection-refused"))


def test_tls_failures_and_their_codes():
    alert = TlsFailure("peer sent alert: unknown ca [TLSV1_ALERT_UNKNOWN_CA]",
                       kind=ErrorKind.ALERT, alert="unknown ca")
    assert errors.from_tls(alert).code == Case("TLS-alert-received", {
        "alert-id": 48, "alert-message": alert.message})
    for kind, tag in [(ErrorKind.CERTIFICATE, "TLS-certificate-error"),
                      (ErrorKind.NOT_TLS, "TLS-protocol-error"),
                      (ErrorKind.VERSION, "TLS-protocol-error"),
                      (ErrorKind.TIMEOUT, "connection-timeout"),
                      (ErrorKind.EOF, "connection-terminated"),
                      (ErrorKind.TRUNCATED, "HTTP-response-incomplete"),
                      (ErrorKind.CONFIGURATION, "configuration-error")]:
        failure = errors.from_tls(TlsFailure("why", kind=kind))
        assert (failure.code.tag, failure.message) == (tag, "why")


def test_connect_failures_and_their_codes():
    assert errors.from_connect(errno.ECONNREFUSED, "x").code == Case("connection-refused")
    assert errors.from_connect(errno.ENETUNREACH, "x").code == Case("destination-IP-unroutable")
    odd = errors.from_connect(errno.EBADF, "http://x:1")
    assert odd.code.tag == "internal-error" and "EBADF" in odd.code.payload
    assert errors.from_resolver("name-unresolvable", "x").code == Case(
        "DNS-error", {"rcode": "name-unresolvable", "info-code": None})
