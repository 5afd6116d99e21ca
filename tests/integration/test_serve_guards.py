"""`wasi-tls-host serve` against clients that misbehave, and its life cycle:
the head and idle deadlines, the head size limit, the connection limit,
bounded buffering for a client that uploads to a handler that does not read
and for one that never reads its response, draining on SIGTERM, several
worker processes, and every command-line mistake as one line with exit 2."""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest
from serving import (
    HttpClient,
    Served,
    children,
    closed_by_peer,
    get,
    pattern,
    process_rss,
    sha256,
)

from conftest import BUILD, HOST

MiB = 1 << 20


@pytest.fixture(scope="module")
def handler(guests) -> str:
    """The componentize-py handler (guests/apps/http-proxy)."""
    return str(guests["http-proxy"])


def identity_flags(pki) -> tuple[str, ...]:
    leaf = pki["localhost"]
    return ("--identity", f"site={leaf.cert_file},{leaf.key_file}")


def tls_connection(port: int, context: ssl.SSLContext) -> ssl.SSLSocket:
    return context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30),
                               server_hostname="localhost")


def test_a_request_head_that_does_not_finish_in_time_is_closed(pki, handler, version):
    served = Served(handler, *identity_flags(pki), "--head-timeout", "1")
    try:
        context = pki.client_context(version)
        trickler = tls_connection(served.port, context)
        trickler.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n")  # and never the end
        began = time.monotonic()
        assert closed_by_peer(trickler, 10)
        assert time.monotonic() - began < 5
        silent = tls_connection(served.port, context)  # says nothing at all
        assert closed_by_peer(silent, 10)
        assert get(served.port, "/", context).status == 200
    finally:
        served.close()
    assert "request head not complete within 1 s; closed" in served.stderr


def test_an_idle_kept_alive_connection_is_closed(pki, handler, version):
    served = Served(handler, *identity_flags(pki), "--idle-timeout", "1")
    try:
        with HttpClient(served.port, pki.client_context(version)) as client:
            assert client.request("GET", "/").status == 200
            assert closed_by_peer(client.sock, 10)
    finally:
        served.close()


def test_an_oversized_request_head_is_answered_431(pki, handler, version):
    served = Served(handler, *identity_flags(pki), "--max-head-size", "4K")
    try:
        context = pki.client_context(version)
        with HttpClient(served.port, context) as client:
            reply = client.request("GET", "/", headers=[("x-large", "a" * 8192)])
        assert reply.status == 431
        assert reply.headers["connection"] == "close"
        with HttpClient(served.port, context) as client:  # a head that fits
            assert client.request("GET", "/", headers=[("x-large", "a" * 2048)]).status == 200
    finally:
        served.close()


def test_a_malformed_request_is_answered_400(handler):
    served = Served(handler)
    try:
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
            sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert get(served.port).status == 200
    finally:
        served.close()


def test_the_connection_limit_leaves_clients_in_the_backlog(pki, handler, version):
    served = Served(handler, *identity_flags(pki), "--max-connections", "2")
    try:
        context = pki.client_context(version)
        held = [tls_connection(served.port, context) for _ in range(2)]
        # The third is accepted by the kernel but not served: no handshake yet.
        waiting = socket.create_connection(("127.0.0.1", served.port), timeout=30)
        result: dict[str, object] = {}

        def third_client() -> None:
            try:
                with HttpClient(served.port, context, raw=waiting) as client:
                    result["handshake_at"] = time.monotonic()
                    result["reply"] = client.request("GET", "/")
            except Exception as error:
                result["error"] = error

        thread = threading.Thread(target=third_client)
        thread.start()
        time.sleep(1.5)
        assert "handshake_at" not in result and "error" not in result
        released_at = time.monotonic()
        held[0].close()
        thread.join(30)
        assert "error" not in result, result
        assert result["handshake_at"] >= released_at
        assert result["reply"].status == 200
        held[1].close()
    finally:
        served.close()


def test_an_upload_to_a_handler_that_does_not_read_is_held_back(handler):
    """The handler sleeps without reading a 256 MiB upload: the server holds
    a bounded amount of it (TCP flow control holds the client back), and
    answers once the handler does."""
    served = Served(handler, "--idle-timeout", "60")
    try:
        sock = socket.create_connection(("127.0.0.1", served.port), timeout=30)
        sock.sendall(b"POST /sleep/4000 HTTP/1.1\r\nHost: localhost\r\n"
                     b"Content-Length: 268435456\r\n\r\n")
        time.sleep(0.5)
        before = process_rss(served.process.pid)  # the request's instance included
        sent = 0
        sock.setblocking(False)
        chunk = b"\0" * MiB
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            try:
                sent += sock.send(chunk)
            except BlockingIOError:
                time.sleep(0.01)
        during = process_rss(served.process.pid)
        assert sent < 32 * MiB  # what the kernel's buffers hold, and the server's
        assert during - before < 4 * MiB
        sock.setblocking(True)
        answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200 OK"), answer
        sock.close()
        assert get(served.port).status == 200
    finally:
        served.close()


def test_a_client_that_never_reads_holds_only_its_own_connection(handler):
    served = Served(handler, "--idle-timeout", "2")
    try:
        stuck = socket.create_connection(("127.0.0.1", served.port), timeout=30)
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.sendall(b"GET /bytes/268435456 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        time.sleep(0.3)
        # Others are served meanwhile,
        assert get(served.port, "/bytes/1000").sha256 == sha256(pattern(1000))
        # and the server holds no more of the 256 MiB as time passes.
        before = process_rss(served.process.pid)  # the request's instance included
        time.sleep(1)
        assert process_rss(served.process.pid) - before < 4 * MiB
        # After --idle-timeout without progress, its response is cut.
        time.sleep(3)
        stuck.settimeout(10)
        received = 0
        try:
            while data := stuck.recv(1 << 20):
                received += len(data)
        except ConnectionResetError:
            pass
        assert received < 32 * MiB
    finally:
        served.close()
    assert "the client took nothing of the response for 2 s" in served.stderr


@pytest.mark.parametrize("flags, target, reason", [
    (("--timeout", "3"), "/sleep/60000", "the guest ran past its time limit (3 s)"),
    # Enough to instantiate the guest (serve does so once at start), not
    # enough for a request; fuel is counted alike on every run.
    (("--fuel", "100000"), "/", "the guest ran out of fuel (100000 units by --fuel)"),
], ids=["timeout", "fuel"])
def test_a_limit_ends_the_requests_guest_and_the_server_goes_on(handler, flags, target, reason):
    """run's limits bound each request's guest under serve: past one, that
    request gets a 500 (for --timeout, waiting in poll counts), one line
    names the request and the limit, and the server serves on."""
    served = Served(handler, *flags)
    try:
        begun = time.monotonic()
        assert get(served.port, target).status == 500
        if target.startswith("/sleep/"):
            assert time.monotonic() - begun < 3 + 2
            # A request that ends within the limit is answered.
            assert get(served.port, "/sleep/10").status == 200
        assert get(served.port, target).status == 500  # each request has the limit afresh
    finally:
        assert served.stop() == 0
    logged = [line for line in served.stderr.splitlines()
              if line.startswith("wasi-tls-host: GET ")]
    assert logged == [f"wasi-tls-host: GET {target}: {reason}; answered 500"] * 2, served.stderr


def test_a_response_its_guest_cut_short_is_logged_once(handler):
    """Once the head has gone, the guest's end (here its time limit, while
    it waits for the rest of the request body) cuts the response short, and
    one line says so. Regression: a second line said it was answered 500."""
    served = Served(handler, "--timeout", "2")
    try:
        with socket.create_connection(("127.0.0.1", served.port), timeout=30) as client:
            client.sendall(b"POST /echo HTTP/1.1\r\nHost: localhost\r\n"
                           b"Content-Length: 100\r\n\r\nonly some")
            received = b""
            while b"\r\n\r\n" not in received:
                received += client.recv(4096)
            assert received.startswith(b"HTTP/1.1 200 ")
            assert closed_by_peer(client, 30)
        assert get(served.port, "/").status == 200
    finally:
        assert served.stop() == 0
    logged = [line for line in served.stderr.splitlines() if "POST /echo" in line]
    assert logged == ["wasi-tls-host: POST /echo: response cut short: the guest ran past its "
                      "time limit (2 s)"], served.stderr


@pytest.mark.parametrize("flags, line", [
    (("--fuel", "1000"), r"wasi-tls-host: the guest ran out of fuel \(1000 units by --fuel\)"),
    (("--max-memory", "1M"), r"wasi-tls-host: the guest does not fit in its memory limit: "
                             r"memory minimum size of \d+ pages exceeds memory limits \(memory "
                             r"capped at 1 MiB by --max-memory\)"),
], ids=["fuel", "max-memory"])
def test_limits_a_guest_cannot_start_in_are_refused_at_start(handler, flags, line):
    """Regression: fuel that ran out while the guest was instantiated was
    taken for missing imports (`wasi:http/types` lacked `headers`)."""
    error = one_line_error(serve_mistake("--addr", "127.0.0.1:0", *flags, handler))
    assert re.fullmatch(line, error), error


def test_sigterm_lets_a_request_in_flight_finish(pki, handler, version):
    served = Served(handler, *identity_flags(pki))
    context = pki.client_context(version)
    outcome: dict[str, object] = {}

    def slow_client() -> None:
        try:
            outcome["reply"] = get(served.port, "/sleep/2000", context)
        except Exception as error:
            outcome["error"] = error

    thread = threading.Thread(target=slow_client)
    thread.start()
    time.sleep(0.7)
    idle = tls_connection(served.port, context)  # a connection with no request
    served.send_signal(signal.SIGTERM)
    assert closed_by_peer(idle, 10)
    thread.join(30)
    assert served.wait(30) == 0
    assert "error" not in outcome, outcome
    reply = outcome["reply"]
    assert reply.status == 200 and reply.text.startswith("Hello from a Python component after")
    assert reply.headers["connection"] == "close"
    with pytest.raises(ConnectionRefusedError):
        get(served.port)


def test_sigterm_cuts_what_outlasts_the_grace_period(handler):
    served = Served(handler, "--grace", "0.5")
    outcome: dict[str, object] = {}

    def slow_client() -> None:
        try:
            outcome["reply"] = get(served.port, "/sleep/60000")
        except Exception as error:
            outcome["error"] = error

    thread = threading.Thread(target=slow_client)
    thread.start()
    time.sleep(0.7)
    began = time.monotonic()
    served.send_signal(signal.SIGINT)
    assert served.wait(30) == 0
    assert time.monotonic() - began < 10
    thread.join(30)
    assert "reply" not in outcome or outcome["reply"].status != 200


def test_two_workers_share_the_socket(pki, handler, version):
    served = Served(handler, *identity_flags(pki), "--workers", "2")
    try:
        workers = children(served.process.pid)
        assert len(workers) == 2
        context = pki.client_context(version)
        # With one worker stopped, the other serves every connection.
        os.kill(workers[0], signal.SIGSTOP)
        try:
            for _ in range(4):
                assert get(served.port, "/", context).status == 200
        finally:
            os.kill(workers[0], signal.SIGCONT)
        # A worker that dies is replaced.
        os.kill(workers[1], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = children(served.process.pid)
            if len(now) == 2 and workers[1] not in now:
                break
            time.sleep(0.2)
        assert len(children(served.process.pid)) == 2
        assert get(served.port, "/", context).status == 200
        assert served.stop() == 0
        assert children(served.process.pid) == []
    finally:
        served.close()
    assert "ended (killed by SIGKILL); starting another" in served.stderr


def serve_mistake(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([HOST, "serve", *arguments], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines()
             if not line.startswith(("usage:", " "))]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("arguments, message", [
    (("--addr", "localhost"), "argument --addr: expected HOST:PORT"),
    (("--addr", "::1:80"), "argument --addr: expected HOST:PORT"),
    (("--addr", "127.0.0.1:70000"), "argument --addr: expected HOST:PORT"),
    (("--workers", "0"), "argument --workers: expected a whole number above 0"),
    (("--max-connections", "none"), "argument --max-connections: expected a whole number"),
    (("--head-timeout", "0"), "argument --head-timeout: must be a finite number"),
    (("--grace", "-1"), "argument --grace: must be a finite number of seconds, 0 or more"),
    (("--max-head-size", "100"), "argument --max-head-size: must be at least 1K"),
    (("--max-head-size", "big"), "argument --max-head-size: expected a size"),
    (("--client-auth", "require"), "argument --client-auth: needs --client-ca"),
    (("--client-auth", "maybe"), "argument --client-auth: invalid choice"),
    (("--client-ca", "{ca}"), "argument --client-ca: client certificates need HTTPS"),
    (("--identity", "site={ca}"), "argument --identity: identity 'site'"),
    (("--identity", "site=/nonexistent.pem,/nonexistent.key"), "argument --identity"),
    (("--ca-file", "/nonexistent.pem"), "argument --ca-file: CA file not found"),
    (("--timeout", "0"), "argument --timeout: must be a finite number of seconds above 0"),
    (("--max-memory", "12X"), "argument --max-memory: expected a size above 0"),
    (("--fuel", "0"), "argument --fuel: expected a whole number above 0, got '0'"),
    (("--no-cache", "--cache-dir", "/tmp"),
     "argument --cache-dir: not allowed with argument --no-cache"),
])
def test_command_line_mistakes(pki, handler, arguments, message):
    arguments = tuple(argument.replace("{ca}", str(pki.ca_file)) for argument in arguments)
    line = one_line_error(serve_mistake(*arguments, handler))
    assert message in line, line


def test_a_missing_component_and_one_that_is_no_handler(handler):
    assert "component not found: /nonexistent.wasm" in one_line_error(
        serve_mistake("/nonexistent.wasm"))
    line = one_line_error(serve_mistake("--addr", "127.0.0.1:0", str(BUILD / "wasi-probe.wasm")))
    assert line.endswith("does not export wasi:http/incoming-handler; it is not an HTTP "
                         "handler (the wasi:http/proxy world).")
    line = one_line_error(serve_mistake("--addr", "127.0.0.1:0", "--workers", "2",
                                        str(BUILD / "wasi-probe.wasm")))
    assert "does not export wasi:http/incoming-handler" in line


def test_an_address_in_use(handler):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        line = one_line_error(serve_mistake("--addr", f"127.0.0.1:{port}", handler))
    assert line == f"wasi-tls-host: cannot listen on 127.0.0.1:{port}: Address already in use"
