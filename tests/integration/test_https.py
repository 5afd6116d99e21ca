"""HTTPS and raw TLS through guests, against real servers on loopback.

Every success case runs under TLS 1.2 and TLS 1.3 against Python's ssl,
`openssl s_server` and nginx; bodies of edge sizes arrive with matching
SHA-256. The failure cases each end in a specific io-error message within a
bounded time.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import ssl
import struct
import threading
from pathlib import Path

import pytest
from pki import TLS_VERSIONS, Leaf

from conftest import run_host, run_wasmtime
from peers import Nginx, OpenSSLServer, PythonHttps
from wasi_tls_host.conformance.peers import TlsEcho

BODY_SIZES = [0, 1, 16383, 16384, 16385, 8 << 20]
#: A failure must be reported well within this (the guest's own run included).
FAILURE_BUDGET_S = 60


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("site")
    bodies = {}
    for size in BODY_SIZES:
        body = hashlib.shake_256(str(size).encode()).digest(size)
        (root / f"{size}.bin").write_bytes(body)
        bodies[f"{size}.bin"] = body
    bodies["__root__"] = root
    return bodies


def https_get(guests, pki, port: int, path: str, *extra_flags: str, timeout=120):
    return run_host(guests["https-get"], f"https://localhost:{port}/{path}",
                    flags=("--ca-file", str(pki.ca_file), "--allow-net", f"localhost:{port}",
                           *extra_flags), timeout=timeout)


def body_line(body: bytes) -> str:
    return f"body: {len(body)} bytes sha256={hashlib.sha256(body).hexdigest()}"


PEERS = {"python": PythonHttps, "openssl": OpenSSLServer, "nginx": Nginx}


@pytest.fixture(params=[(peer, version) for peer in PEERS for version in sorted(TLS_VERSIONS)],
                ids=lambda p: f"{p[0]}-tls{p[1]}", scope="module")
def server(request, pki, site):
    peer, version = request.param
    if peer == "nginx" and shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        pytest.fail("nginx is missing: `make peers` installs it")
    instance = PEERS[peer](pki, site["__root__"], version)
    yield instance
    instance.close()


@pytest.mark.parametrize("size", BODY_SIZES)
def test_body_arrives_intact(guests, pki, site, server, size):
    result = https_get(guests, pki, server.port, f"{size}.bin")
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert lines[0].split()[1] == "200"
    assert lines[-1] == body_line(site[f"{size}.bin"])


def test_tls_echo_of_one_mebibyte_with_clean_close(guests, pki, version):
    """Against an echo peer that answers close_notify with its own."""
    peer = TlsEcho(pki, version)
    result = run_host(guests["tls-echo-client"], f"127.0.0.1:{peer.port}", str(1 << 20),
                      "localhost", flags=("--ca-file", str(pki.ca_file),
                                          "--allow-net", f"127.0.0.1:{peer.port}"))
    peer.close()
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert f"echoed {1 << 20} bytes" in out
    assert "closed cleanly" in out
    assert peer.problems({"sent": 1 << 20}) == []


# -- failures ------------------------------------------------------------------

class OneShotServer:
    """Accepts one connection and runs `behave(conn)` on it in a thread."""

    def __init__(self, behave):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, args=(behave,), daemon=True).start()

    def _serve(self, behave) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        try:
            behave(conn)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.listener.close()


def tls_server(pki, leaf: Leaf, version: str | None, respond, *, legacy: bool = False):
    """A one-shot TLS server presenting `leaf` that runs `respond` on the connection."""
    context = pki.server_context(leaf, version, legacy=legacy)

    def behave(raw):
        conn = context.wrap_socket(raw, server_side=True)
        respond(conn)
    return OneShotServer(behave)


def read_request(conn) -> None:
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = conn.recv(4096)
        if not chunk:
            return
        received += chunk


def expect_failure(guests, pki, server, message, *flags):
    try:
        result = https_get(guests, pki, server.port, "x", *flags, timeout=FAILURE_BUDGET_S)
    finally:
        server.close()
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert message in stderr, stderr
    assert "Traceback" not in stderr
    return stderr


def test_unknown_ca(guests, pki, version):
    expect_failure(guests, pki, tls_server(pki, pki["unknown-ca"], version, read_request),
                   "certificate verify failed: unable to get local issuer certificate "
                   "(server name: localhost)")


def test_wrong_hostname(guests, pki, version):
    expect_failure(guests, pki, tls_server(pki, pki["other-name"], version, read_request),
                   "Hostname mismatch")


def test_expired_certificate(guests, pki, version):
    expect_failure(guests, pki, tls_server(pki, pki["expired"], version, read_request),
                   "certificate has expired")


def test_server_that_only_speaks_tls_1_0_and_1_1(guests, pki):
    server = tls_server(pki, pki["localhost"], None, read_request, legacy=True)
    expect_failure(guests, pki, server, "peer sent alert: protocol version")


def test_server_closing_mid_handshake(guests, pki):
    def hang_up(conn):
        conn.recv(100)  # part of the ClientHello, then close
    expect_failure(guests, pki, OneShotServer(hang_up),
                   "peer closed the connection during the handshake")


def test_server_sending_garbage(guests, pki):
    def babble(conn):
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" * 20)
    expect_failure(guests, pki, OneShotServer(babble), "peer sent data that is not TLS")


def test_handshake_timeout(guests, pki):
    silent = threading.Event()
    server = OneShotServer(lambda conn: silent.wait(30))
    stderr = expect_failure(guests, pki, server, "handshake timed out (server name: localhost)",
                            "--tls-handshake-timeout", "1")
    silent.set()
    assert stderr


def test_server_resetting_mid_body(guests, pki, version):
    def reset(conn):
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n" + bytes(100_000))
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    expect_failure(guests, pki, tls_server(pki, pki["localhost"], version, reset),
                   "connection-reset")


def test_eof_without_close_notify_is_truncation(guests, pki, version):
    def truncate(conn):
        read_request(conn)
        conn.sendall(b"HTTP/1.0 200 OK\r\n\r\npartial body")
        # Close the TCP connection under TLS: no close_notify.
        socket.socket(fileno=conn.detach()).close()
    expect_failure(guests, pki, tls_server(pki, pki["localhost"], version, truncate),
                   "peer closed without close_notify (truncated)")


def test_untrusted_certificate_fails_under_both_hosts(guests, pki):
    """Differential: wasmtime's own wasi:tls (rustls) rejects it too."""
    server = tls_server(pki, pki["unknown-ca"], "1.3", read_request)
    ours = https_get(guests, pki, server.port, "x", timeout=FAILURE_BUDGET_S)
    server.close()
    server = tls_server(pki, pki["unknown-ca"], "1.3", read_request)
    theirs = run_wasmtime(guests["https-get"], f"https://localhost:{server.port}/x",
                          flags=("-S", "tls", "-S", "inherit-network",
                                 "-S", "allow-ip-name-lookup"), timeout=FAILURE_BUDGET_S)
    server.close()
    assert ours.returncode == 1 and theirs.returncode == 1, (ours.stderr, theirs.stderr)
    assert "certificate verify failed" in ours.stderr.decode()
    assert "error:" in theirs.stderr.decode()


def test_key_log_is_written_for_wireshark(guests, pki, site, tmp_path):
    server = PythonHttps(pki, site["__root__"], "1.3")
    key_log = tmp_path / "keys.log"
    try:
        result = https_get(guests, pki, server.port, "1.bin", "--tls-keylog", str(key_log))
    finally:
        server.close()
    assert result.returncode == 0, result.stderr.decode()
    labels = {line.split()[0] for line in key_log.read_text().splitlines() if line.strip()}
    assert "CLIENT_TRAFFIC_SECRET_0" in labels


def test_sslkeylogfile_environment_variable(guests, pki, site, tmp_path):
    server = PythonHttps(pki, site["__root__"], "1.2")
    key_log = tmp_path / "env-keys.log"
    try:
        result = run_host(guests["https-get"], f"https://localhost:{server.port}/1.bin",
                          flags=("--ca-file", str(pki.ca_file),
                                 "--allow-net", f"localhost:{server.port}"),
                          env={"SSLKEYLOGFILE": str(key_log)})
    finally:
        server.close()
    assert result.returncode == 0, result.stderr.decode()
    assert "CLIENT_RANDOM" in key_log.read_text()


def test_default_trust_is_certifi_not_the_test_ca(guests, pki, site):
    """Without --ca-file the local CA is unknown: trust is the host's choice."""
    server = PythonHttps(pki, site["__root__"], "1.3")
    try:
        result = run_host(guests["https-get"], f"https://localhost:{server.port}/1.bin",
                          flags=("--allow-net", f"localhost:{server.port}"))
    finally:
        server.close()
    assert result.returncode == 1
    assert "unable to get local issuer certificate" in result.stderr.decode()


def test_handshake_over_a_shut_down_transport_is_an_error_value(guests, echo_server, pki):
    """Regression: the guest shuts down its TCP sending side and the peer
    closes before the handshake. Releasing that transport after the failed
    handshake shut the socket down again (ENOTCONN) and trapped as an
    internal error; it is an error value, as under wasmtime ("write zero")."""
    target = f"127.0.0.1:{echo_server.port}"
    ours = run_host(guests["tls-echo-client"], "--shutdown-first", target, "16", "localhost",
                    flags=("--ca-file", str(pki.ca_file), "--allow-net", target))
    theirs = run_wasmtime(guests["tls-echo-client"], "--shutdown-first", target, "16",
                          "localhost", flags=("-S", "tls", "-S", "inherit-network"))
    assert (ours.returncode, ours.stdout, ours.stderr.decode()) == (
        1, b"", "error: peer closed the connection during the handshake\n")
    assert (theirs.returncode, theirs.stderr.decode()) == (1, "error: write zero\n")


def test_server_name_openssl_refuses_is_an_error_value(guests, echo_server, pki):
    """Regression: 299 characters in five labels of 59 pass Python's checks,
    but OpenSSL refuses a name over 255 bytes (SSL3_EXT_INVALID_SERVERNAME).
    That SSLError trapped; it is the error value "invalid server name", as
    under wasmtime."""
    name = ".".join(["a" * 59] * 5)
    target = f"127.0.0.1:{echo_server.port}"
    ours = run_host(guests["tls-echo-client"], target, "16", name,
                    flags=("--ca-file", str(pki.ca_file), "--allow-net", target))
    theirs = run_wasmtime(guests["tls-echo-client"], target, "16", name,
                          flags=("-S", "tls", "-S", "inherit-network"))
    stderr = ours.stderr.decode()
    assert (ours.returncode, ours.stdout, stderr.count("\n")) == (1, b"", 1), stderr
    assert stderr.startswith(f"error: invalid server name {name!r}: "
                             "[SSL: SSL3_EXT_INVALID_SERVERNAME]")
    assert (theirs.returncode, theirs.stderr.decode()) == (1, "error: invalid server name\n")
