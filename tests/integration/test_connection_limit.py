"""`run --max-connections N` through the installed command: a guest server
facing more clients than its limit gets `new-socket-limit` from accept, the
host stays up, and the clients beyond the limit wait in the listen backlog
and are served once earlier connections close; a guest client gets it from
create-tcp-socket.

The server is tcp-echo-server, whose accepts go through the guest library:
it waits out `new-socket-limit` (backing off) and carries on."""

from __future__ import annotations

import socket
import subprocess

import pytest

from conftest import HOST, run_host

LIMIT = 4  # the listener and three connections
CLIENTS = 6


def echo(client: socket.socket, message: bytes) -> bytes:
    client.sendall(message)
    received = b""
    while len(received) < len(message):
        data = client.recv(100)
        if not data:
            break
        received += data
    return received


def finish(client: socket.socket) -> bytes:
    """Shut down the sending side and read to the end: the server closes then."""
    client.shutdown(socket.SHUT_WR)
    rest = b""
    while data := client.recv(100):
        rest += data
    client.close()
    return rest


def test_a_guest_server_beyond_its_limit_serves_the_rest_later(guests, tmp_path):
    log = tmp_path / "stderr.txt"
    with open(log, "wb") as stderr:
        server = subprocess.Popen(
            [HOST, "run", "--allow-net", "127.0.0.1", "--max-connections", str(LIMIT),
             str(guests["tcp-echo-server"]), "127.0.0.1:0", str(CLIENTS)],
            stdout=subprocess.PIPE, stderr=stderr)
    try:
        port = int(server.stdout.readline().decode().rsplit(":", 1)[1])
        clients = [socket.create_connection(("127.0.0.1", port), timeout=30)
                   for _ in range(CLIENTS)]
        served, waiting = clients[:LIMIT - 1], clients[LIMIT - 1:]
        for number, client in enumerate(served):
            assert echo(client, b"hello %d" % number) == b"hello %d" % number
        for client in waiting:
            client.sendall(b"waiting")
            client.settimeout(2)
        for client in waiting:  # connected (the kernel's backlog) but not accepted
            with pytest.raises(TimeoutError):
                client.recv(100)
        assert server.poll() is None  # the host stays up
        for client in served:
            assert finish(client) == b""
        for client in waiting:
            client.settimeout(30)
            assert finish(client) == b"waiting"
        assert server.wait(60) == 0
    finally:
        server.kill()
        server.communicate()
    report = log.read_text().splitlines()
    assert report[-1] == f"served {CLIENTS} connection(s), 0 failed"
    assert sum(": accepted from 127.0.0.1:" in line for line in report) == CLIENTS


def test_a_guest_client_beyond_its_limit_cannot_create_a_socket(guests, echo_server):
    result = run_host(guests["tcp-echo-client"], f"127.0.0.1:{echo_server.port}", "10",
                      flags=("--allow-net", "127.0.0.1", "--max-connections", "0"))
    assert (result.returncode, result.stderr.decode()) == (1, "error: new-socket-limit\n")
    within = run_host(guests["tcp-echo-client"], f"127.0.0.1:{echo_server.port}", "10",
                      flags=("--allow-net", "127.0.0.1", "--max-connections", "1"))
    assert within.returncode == 0, within.stderr.decode()
    assert within.stdout.decode().startswith("echoed 10 bytes")


def test_a_bad_limit_is_a_usage_error(guests):
    result = run_host(guests["wasi-probe"], flags=("--max-connections", "-1"))
    stderr = result.stderr.decode()
    assert result.returncode == 2
    assert stderr.splitlines()[-1] == ("wasi-tls-host run: error: argument --max-connections: "
                                       "expected a whole number 0 or more, got '-1'")
