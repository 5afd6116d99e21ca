"""What a guest is told when its TLS handshake fails, under `wasi-tls-host
run` without --debug, TLS 1.2 and 1.3: the host's reason, through the
upstream wasi:tls client (its io-error) and through wasi-tls-host:tls (the
connection's failure-reason, since the draft's futures carry nothing).
`wasi_guest.tls.TlsError` shows it either way."""

from __future__ import annotations

import select
import socket
import ssl
import threading

import pytest

from conftest import GuestServer, run_host

UNTRUSTED = ("certificate verify failed: unable to get local issuer certificate "
             "(server name: localhost)")


class RefusedServer:
    """One TLS connection served with a certificate from a CA the host is not told about."""

    def __init__(self, context: ssl.SSLContext):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, args=(context,), daemon=True)
        self.thread.start()

    def _serve(self, context: ssl.SSLContext) -> None:
        raw, _ = self.listener.accept()
        self.listener.close()
        with raw:
            raw.settimeout(30)
            try:
                context.wrap_socket(raw, server_side=True).close()
            except (ssl.SSLError, OSError):
                pass  # the guest refuses the certificate: that is the point

    def finish(self) -> None:
        self.thread.join(30)


@pytest.mark.parametrize("guest", ["https-get", "mtls-client"], ids=["upstream", "draft"])
def test_a_guest_is_told_why_the_server_was_refused(guests, pki, version, guest):
    server = RefusedServer(pki.server_context(pki["unknown-ca"], version))
    address = f"127.0.0.1:{server.port}"
    flags = ("--ca-file", str(pki.ca_file), "--allow-net", address)
    if guest == "https-get":
        result = run_host(guests[guest], f"https://localhost:{server.port}/", flags=flags)
    else:
        client = pki["client"]
        result = run_host(guests[guest], address, "localhost", flags=(
            *flags, "--identity", f"me={client.cert_file},{client.key_file}"))
    server.finish()
    assert result.returncode == 1
    assert result.stderr.decode() == f"error: {UNTRUSTED}\n"


def test_a_guest_server_is_told_what_openssl_made_of_bytes_that_are_no_client_hello(
        guests, pki):
    leaf = pki["localhost"]
    server = GuestServer(guests["https-server"], "127.0.0.1:0", flags=(
        "--allow-net", "127.0.0.1", "--identity", f"localhost={leaf.cert_file},{leaf.key_file}"))
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw:
            raw.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert raw.recv(100) == b""  # no alert to what is not TLS
        assert select.select([server.process.stderr], [], [], 30)[0]
        logged = server.process.stderr.readline().decode()
    finally:
        server.close()
    assert logged == ("connection 1: error: peer sent data that is not TLS: "
                      "http request [HTTP_REQUEST]\n")
