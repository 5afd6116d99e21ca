"""SIGTERM to `wasi-tls-host run` drains a guest server (TLS 1.2 and 1.3):
the host closes the guest's listening sockets, so new clients are refused
and the guest library's accept loop ends, while connections already made
go on. The run ends with the guest's own status once they have finished,
or with 143 when the --grace period runs out first."""

from __future__ import annotations

import io
import signal
import socket
import subprocess
import time

import pytest

from conftest import HOST, GuestServer
from wasi_tls_host import GuestRun, GuestTrap, Host, HostConfig
from wasi_tls_host.config import NetRule
from wasi_tls_host.tls import TlsPolicy

REQUEST_START = b"GET /drain HTTP/1.1\r\nHost: b.example\r\n"
REQUEST_END = b"Connection: close\r\n\r\n"


@pytest.fixture(scope="module")
def leaf(pki):
    return pki.leaf("b.example")


def https_server(guests, leaf, grace: float) -> GuestServer:
    return GuestServer(guests["https-server"], "127.0.0.1:0", flags=(
        "--allow-net", "127.0.0.1", "--grace", str(grace),
        "--identity", f"b.example={leaf.cert_file},{leaf.key_file}"))


def refuses_connections(port: int, seconds: float = 10.0) -> bool:
    """Whether connecting to `port` is refused within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        except ConnectionResetError:
            pass  # queued when the listener closed, and reset with it: try again
        time.sleep(0.05)
    return False


def complaints(err: str) -> list[str]:
    """stderr without the note a first run of a new guest may print (it compiles it)."""
    return [line for line in err.splitlines() if not line.startswith("wasi-tls-host: compiling")]


def read_response(conn) -> bytes:
    response = b""
    while data := conn.recv(65536):
        response += data
    return response


def test_a_request_in_flight_completes_and_the_run_ends_with_the_guests_status(
        guests, pki, leaf, version):
    server = https_server(guests, leaf, grace=30)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw, \
                pki.client_context(version).wrap_socket(raw, server_hostname="b.example") \
                as conn:
            conn.sendall(REQUEST_START)  # half a request head: the guest waits for the rest
            time.sleep(0.2)
            terminated = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            assert refuses_connections(server.port)
            conn.sendall(REQUEST_END)
            response = read_response(conn)
        status, out, err = server.finish(timeout=30)
        took = time.monotonic() - terminated
    finally:
        server.close()
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"path: /drain" in response
    assert f"protocol: TLSv{version}".encode() in response
    assert (status, complaints(err)) == (0, [])
    assert out.startswith("GET 200 path=/drain")
    assert took < 10  # the guest ended once its connection did, not at the grace's end


def test_a_connection_still_open_at_the_end_of_the_grace_period_is_stopped(
        guests, pki, leaf, version):
    server = https_server(guests, leaf, grace=1)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw, \
                pki.client_context(version).wrap_socket(raw, server_hostname="b.example") \
                as conn:
            conn.sendall(REQUEST_START + b"\r\n")
            assert conn.recv(12) == b"HTTP/1.1 200"  # served; now idle on a kept-alive connection
            terminated = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            assert refuses_connections(server.port)
            status, _, err = server.finish(timeout=30)
            took = time.monotonic() - terminated
    finally:
        server.close()
    assert status == 143
    assert err.strip().splitlines()[-1] == ("wasi-tls-host: the guest was stopped: still "
                                            "running at the end of its grace period after "
                                            "SIGTERM")
    assert 0.9 < took < 10


def test_a_second_sigterm_does_not_cut_the_grace_period_short(guests, pki, leaf, version):
    server = https_server(guests, leaf, grace=30)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw, \
                pki.client_context(version).wrap_socket(raw, server_hostname="b.example") \
                as conn:
            conn.sendall(REQUEST_START)
            server.process.send_signal(signal.SIGTERM)
            assert refuses_connections(server.port)
            server.process.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            assert server.process.poll() is None
            conn.sendall(REQUEST_END)
            assert read_response(conn).startswith(b"HTTP/1.1 200 OK\r\n")
        status, _, err = server.finish(timeout=30)
    finally:
        server.close()
    assert (status, complaints(err)) == (0, [])


def test_a_guest_without_listeners_is_stopped_at_the_end_of_the_grace_period(guests):
    """SIGTERM does not interrupt a guest that serves nothing; the grace
    period bounds it (here a client guest waiting for a server that
    accepts but never answers)."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        process = subprocess.Popen(
            [HOST, "run", "--allow-net", "127.0.0.1", "--grace", "0.5",
             str(guests["tcp-echo-client"]), f"127.0.0.1:{port}", "5"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        accepted, _ = silent.accept()
        with accepted:
            accepted.recv(5)
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=30)
    assert process.returncode == 143
    assert b"still running at the end of its grace period after SIGTERM" in err


def test_an_embedder_drains_a_guest_run_on_its_own_thread(guests, pki, leaf, version):
    """`GuestRun.drain` through the API, with tls-echo-server: an echo in
    flight goes on, a new client is refused, and the run ends with the
    guest's 0 once the connection closes; a run never drained stops at its
    grace's end with kind "stopped"."""
    def echo_server() -> tuple[GuestRun, int]:
        stdout = io.BytesIO()
        policy = TlsPolicy(identities={"b.example": pki.identity("b.example")})
        run = Host().start(guests["tls-echo-server"], ["tls-echo-server", "127.0.0.1:0"],
                           config=HostConfig(allow_net=[NetRule.parse("127.0.0.1")], tls=policy,
                                             stdout=stdout, stderr=io.BytesIO()))
        deadline = time.monotonic() + 120
        while b"\n" not in stdout.getvalue():
            assert not run.done and time.monotonic() < deadline
            time.sleep(0.01)
        return run, int(stdout.getvalue().split(b"\n")[0].rsplit(b":", 1)[1])

    run, port = echo_server()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw, \
            pki.client_context(version).wrap_socket(raw, server_hostname="b.example") as conn:
        conn.sendall(b"before")
        assert conn.recv(6) == b"before"
        run.drain(30)
        assert refuses_connections(port)
        conn.sendall(b"after")
        assert conn.recv(5) == b"after"
    assert run.wait(timeout=30) == 0

    held, port = echo_server()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw, \
            pki.client_context(version).wrap_socket(raw, server_hostname="b.example"):
        held.drain(0.5)
        with pytest.raises(GuestTrap) as stopped:
            held.wait(timeout=30)
    assert (stopped.value.kind, stopped.value.exit_status) == ("stopped", 143)
