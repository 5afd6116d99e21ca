"""The server side of HTTP/1.1 (http/server.py, http/serve.py) with handlers
written in Python against the same wasi:http objects a guest gets: what
the protocol owes a client whatever the handler does (HEAD, pipelining,
HTTP/1.0, responses h11 cannot send, a handler that raises), without a
WebAssembly guest in the way."""

from __future__ import annotations

import errno
import logging
import socket

import pytest

from wasi_tls_host.http.fields import Fields
from wasi_tls_host.http.messages import OutgoingResponse
from wasi_tls_host.http.serve import HttpServer, listen
from wasi_tls_host.http.settings import ServeSettings
from wasi_tls_host.runtime.values import Ok


def answer(status: int = 200, body: bytes | None = b"hello\n", headers=()):
    """A handler answering every request with `status` and `body`."""
    def handler(exchange) -> None:
        response = OutgoingResponse(Fields(list(headers)))
        response.set_status(status)
        outgoing = response.take_body() if body is not None else None
        exchange.outparam.set(Ok(response))
        if outgoing is not None:
            outgoing.write().write(body)
            outgoing.finish(None)
    return handler


@pytest.fixture
def serve():
    servers = []

    def start(handler) -> HttpServer:
        server = HttpServer(handler, listen("127.0.0.1", 0), settings=ServeSettings(port=0))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close(grace=0)


def exchange(server: HttpServer, data: bytes) -> bytes:
    """Send `data`, half-close, and read until the server closes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError as error:  # a response cut short may have reset it already
            if error.errno != errno.ENOTCONN:
                raise
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:  # how a response cut short ends
            pass
    return received


def test_pipelined_requests_are_answered_in_order(serve):
    server = serve(answer(body=b"pong\n"))
    received = exchange(server, b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
                                b"GET /2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert received.count(b"HTTP/1.1 200 OK\r\n") == 2
    assert received.count(b"pong\n") == 2


def test_a_head_request_gets_no_body(serve):
    server = serve(answer(body=b"not sent\n", headers=[("content-length", b"9")]))
    received = exchange(server, b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: 9\r\n" in received
    assert received.endswith(b"\r\n\r\n")


def test_an_http_1_0_client_gets_a_body_ended_by_the_close(serve):
    server = serve(answer(body=b"old\n"))
    received = exchange(server, b"GET / HTTP/1.0\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert received.endswith(b"\r\n\r\nold\n")


def test_a_response_without_a_body_says_its_length(serve):
    server = serve(answer(status=201, body=None))
    received = exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 201 Created\r\n")
    assert b"content-length: 0\r\n" in received


def test_a_status_that_cannot_be_a_final_response_is_a_500(serve):
    server = serve(answer(status=103))
    received = exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")


def test_a_handler_that_raises_is_a_500_and_the_server_goes_on(serve):
    calls = []

    def handler(exchange) -> None:
        calls.append(exchange)
        if len(calls) == 1:
            raise RuntimeError("a defect")
        answer()(exchange)

    server = serve(handler)
    first = exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    second = exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert second.startswith(b"HTTP/1.1 200 OK\r\n") and b"hello\n" in second


def test_a_connection_that_ends_after_the_server_stopped_pokes_nothing(serve):
    """Regression: a connection ending after the server had closed its
    wake-up pipe wrote to the closed fd (EBADF, or a file reusing it)."""
    server = serve(answer())
    server.close(grace=0)
    server._forget(object())  # type: ignore[arg-type]  # as a late connection does


def test_close_stops_accepting_and_frees_the_port(serve):
    server = serve(answer())
    port = server.port
    server.close(grace=0)
    assert server.stopped
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)


def fails_after_the_head(backtrace: str = ""):
    """A handler that sends its head and some body, then fails as a trap
    does under serve (`GuestHandler` calls `handler_failed`)."""
    def handler(exchange) -> None:
        response = OutgoingResponse(Fields([]))
        response.set_status(200)
        outgoing = response.take_body()
        exchange.outparam.set(Ok(response))
        outgoing.write().write(b"partial")
        exchange.handler_failed("the guest trapped: boom", backtrace)
    return handler


def logged(caplog) -> list[tuple[str, str]]:
    return [(record.levelname, record.getMessage()) for record in caplog.records
            if record.name.startswith("wasi_tls_host.http")]


def test_a_response_a_failure_cut_short_is_logged_once_as_cut_short(serve, caplog):
    """Regression: it was logged as `answered 500` as well, which it was not."""
    caplog.set_level(logging.INFO, logger="wasi_tls_host")
    server = serve(fails_after_the_head())
    exchange(server, b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    server.close(grace=0)
    assert logged(caplog) == [
        ("WARNING", "GET /stream: response cut short: the guest trapped: boom")]


@pytest.mark.parametrize("head_sent", [False, True], ids=["answered", "cut-short"])
def test_a_failures_backtrace_is_logged_above_its_line(serve, caplog, head_sent):
    caplog.set_level(logging.INFO, logger="wasi_tls_host")

    def fails_at_once(exchange) -> None:
        exchange.handler_failed("the guest trapped: boom", "wasm backtrace:\n  0: handle\n")

    server = serve(fails_after_the_head("wasm backtrace:\n  0: handle\n") if head_sent
                   else fails_at_once)
    exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    server.close(grace=0)
    outcome = ("response cut short: the guest trapped: boom" if head_sent
               else "the guest trapped: boom; answered 500")
    assert logged(caplog) == [("WARNING", "GET /: wasm backtrace:\n  0: handle"),
                              ("WARNING", f"GET /: {outcome}")]
