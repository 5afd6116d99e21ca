"""wasi:sockets/tcp through real guests, against Python peers on loopback."""

import hashlib
import re
import socket
import subprocess
import threading

from conftest import HOST, run_host, run_wasmtime
from peers import free_port


def pattern(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


def test_one_mebibyte_echoes_intact(guests, echo_server):
    size = 1 << 20
    result = run_host(guests["tcp-echo-client"], f"127.0.0.1:{echo_server.port}", str(size),
                      flags=("--allow-net", f"127.0.0.1:{echo_server.port}"))
    assert result.returncode == 0, result.stderr.decode()
    digest = hashlib.sha256(pattern(size)).hexdigest()
    assert result.stdout.decode().strip() == f"echoed {size} bytes sha256={digest}"


def test_two_borrowed_parameters_regression(guests, echo_server):
    """`tcp-socket.start-connect` borrows the socket and the network at once.

    wasmtime-py 50.0.1 traps on such calls ("deferred host scope has no call
    context"); this is why wasmtime is pinned to 49.0.0. If an upgrade breaks
    two-borrow calls, this connect fails.
    """
    result = run_host(guests["tcp-echo-client"], f"127.0.0.1:{echo_server.port}", "1",
                      flags=("--allow-net", "127.0.0.1"))
    assert result.returncode == 0, result.stderr.decode()
    assert "deferred host scope" not in result.stderr.decode()


def test_connect_without_permission_is_access_denied(guests, echo_server):
    result = run_host(guests["tcp-echo-client"], f"127.0.0.1:{echo_server.port}")
    assert result.returncode == 1
    assert "error: access-denied" in result.stderr.decode()
    assert echo_server.served == []


def test_permission_for_another_port_is_access_denied(guests, echo_server):
    result = run_host(guests["tcp-echo-client"], f"127.0.0.1:{echo_server.port}",
                      flags=("--allow-net", f"127.0.0.1:{echo_server.port + 1}"))
    assert result.returncode == 1
    assert "error: access-denied" in result.stderr.decode()


def test_connection_refused_is_an_error_code(guests):
    port = free_port()
    result = run_host(guests["tcp-echo-client"], f"127.0.0.1:{port}",
                      flags=("--inherit-network",))
    assert result.returncode == 1
    assert "error: connection-refused" in result.stderr.decode()


def test_ipv6_loopback(guests):
    listener = socket.create_server(("::1", 0), family=socket.AF_INET6)
    port = listener.getsockname()[1]

    def echo_once():
        conn, _ = listener.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)
    threading.Thread(target=echo_once, daemon=True).start()
    result = run_host(guests["tcp-echo-client"], f"[::1]:{port}", "5000",
                      flags=("--allow-net", f"[::1]:{port}"))
    listener.close()
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().startswith("echoed 5000 bytes")


def test_echo_server_serves_concurrent_clients_through_one_poll(guests):
    port = free_port()
    server = subprocess.Popen(
        [HOST, "run", "--allow-net", f"127.0.0.1:{port}",
         str(guests["tcp-echo-server"]), f"127.0.0.1:{port}", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        banner = server.stdout.readline().decode()
        assert re.match(rf"listening on 127\.0\.0\.1:{port}", banner), banner
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        payloads = [pattern(100_000 + i) for i in range(3)]
        # Interleave: every client sends before any reads, so the guest must
        # serve them concurrently.
        for client, payload in zip(clients, payloads, strict=True):
            client.sendall(payload[:50_000])
        for client, payload in zip(clients, payloads, strict=True):
            client.sendall(payload[50_000:])
            client.shutdown(socket.SHUT_WR)
        for client, payload in zip(clients, payloads, strict=True):
            received = bytearray()
            while data := client.recv(65536):
                received += data
            assert bytes(received) == payload
            client.close()
        assert server.wait(timeout=60) == 0, server.stderr.read().decode()
    finally:
        server.kill()


def test_echo_client_matches_wasmtime(guests, echo_server):
    target = f"127.0.0.1:{echo_server.port}"
    ours = run_host(guests["tcp-echo-client"], target, "100000", flags=("--allow-net", target))
    theirs = run_wasmtime(guests["tcp-echo-client"], target, "100000",
                          flags=("-S", "inherit-network"))
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout)
    assert ours.returncode == 0


def test_shutdown_then_read_to_end_then_drop(guests, echo_server):
    """Regression: send, shut down the sending side, read until the peer
    closes, drop. Dropping the output stream then must not shut the socket
    down again (ENOTCONN once the peer is gone); that killed the host."""
    target = f"127.0.0.1:{echo_server.port}"
    ours = run_host(guests["tcp-echo-client"], "--shutdown", target, "10000",
                    flags=("--allow-net", target))
    theirs = run_wasmtime(guests["tcp-echo-client"], "--shutdown", target, "10000",
                          flags=("-S", "inherit-network"))
    digest = hashlib.sha256(pattern(10000)).hexdigest()
    assert (ours.returncode, ours.stdout.decode(), ours.stderr.decode()) == (
        0, f"echoed 10000 bytes sha256={digest}\n", "")
    assert (theirs.returncode, theirs.stdout) == (0, ours.stdout)
