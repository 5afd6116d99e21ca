"""Guests using the full wasi-tls-host:tls client against real servers on
loopback, under TLS 1.2 and 1.3: a client certificate from a provisioned
identity (`openssl s_server -Verify 1`, Python ssl), ALPN with a server that
requires it, aborting after a look at the server's chain, and every getter
against what the server saw."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading

import pytest
from pki import der_chain

from conftest import run_host
from peers import facts, fingerprint, free_port, iana_code, openssl_flag, wait_for_port


@pytest.fixture(scope="module")
def identity(pki):
    return pki.leaf("client.example")


def mtls_client(guests, pki, identity, port, *args):
    return run_host(guests["mtls-client"], f"127.0.0.1:{port}", "localhost", *args, flags=(
        "--ca-file", str(pki.ca_file), "--allow-net", f"127.0.0.1:{port}",
        "--identity", f"me={identity.cert_file},{identity.key_file}"))


class PythonServer:
    """One TLS connection served by Python ssl; records what it saw."""

    def __init__(self, context: ssl.SSLContext,
                 reply=lambda line: line.strip()[::-1] + b"\n", require_alpn=False):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.seen: dict = {}
        self.require_alpn = require_alpn
        self.thread = threading.Thread(target=self._serve, args=(context, reply), daemon=True)
        self.thread.start()

    def _serve(self, context, reply) -> None:
        raw, _ = self.listener.accept()
        raw.settimeout(30)
        try:
            with context.wrap_socket(raw, server_side=True) as conn:
                self.seen.update(version=conn.version(), cipher=conn.cipher()[0],
                                 alpn=conn.selected_alpn_protocol(),
                                 client=conn.getpeercert(binary_form=True))
                if self.require_alpn and self.seen["alpn"] is None:
                    self.seen["refused"] = True  # no protocol in common: hang up
                    return
                data = conn.recv(1000)
                self.seen["data"] = data
                if data:
                    conn.sendall(reply(data))
        except (ssl.SSLError, OSError) as error:
            self.seen["error"] = error
        finally:
            raw.close()

    def finish(self) -> dict:
        self.thread.join(30)
        self.listener.close()
        return self.seen


def test_client_certificate_for_openssl_s_server(guests, pki, identity, version):
    leaf = pki["localhost"]
    port = free_port()
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(leaf.cert_file),
         "-key", str(leaf.key_file), "-Verify", "1", "-CAfile", str(pki.ca_file), "-rev",
         openssl_flag(version)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, server)
        result = mtls_client(guests, pki, identity, port, "--message", "ping")
    finally:
        server.kill()
        log = server.communicate()[0].decode()
    assert result.returncode == 0, result.stderr.decode()
    seen = facts(result.stdout.decode())
    assert seen["reply"] == "gnip"
    assert seen["client certificate sent"] == fingerprint(der_chain(identity)[0])
    assert seen["protocol"] == f"TLSv{version}"
    assert "verify return:1" in log  # s_server verified the client's chain


def test_every_getter_equals_what_the_server_saw(guests, pki, identity, version):
    leaf = pki.leaf("localhost")
    server = PythonServer(pki.server_context(leaf, version, client_auth=ssl.CERT_REQUIRED))
    result = mtls_client(guests, pki, identity, server.port, "--message", "hello")
    seen = server.finish()
    assert result.returncode == 0, result.stderr.decode()
    reported = facts(result.stdout.decode())
    assert reported == {
        "server certificate": fingerprint(der_chain(leaf)[0]),
        "reply": "olleh",
        "client certificate sent": fingerprint(seen["client"]),
        "protocol": seen["version"],
        "cipher suite": f"0x{iana_code(seen['cipher']):04x}",
    }
    assert seen["client"] == der_chain(identity)[0]


def test_abort_after_a_look_at_the_chain_sends_no_application_data(guests, pki, identity,
                                                                   version):
    server = PythonServer(pki.server_context(pki.leaf("localhost"), version))
    result = mtls_client(guests, pki, identity, server.port, "--reject-server")
    seen = server.finish()
    assert result.returncode == 1
    assert result.stderr.decode() == (
        "error: the verify hook rejected the server's certificate\n")
    assert result.stdout.decode().startswith("server certificate: sha256:")
    assert "data" not in seen and isinstance(seen.get("error"), ssl.SSLError)


@pytest.mark.parametrize("server_offers, expected", [
    (["h2", "http/1.1"], "h2"),
    (["spdy/3"], "none"),
])
def test_alpn_with_a_server_that_requires_it(guests, pki, version, server_offers, expected):
    context = pki.server_context(pki.leaf("localhost"), version)
    context.set_alpn_protocols(server_offers)
    server = PythonServer(context, require_alpn=True)
    port = server.port
    result = run_host(guests["alpn-client"], f"127.0.0.1:{port}", "localhost",
                      "--offer", "h2,http/1.1",
                      flags=("--ca-file", str(pki.ca_file), "--allow-net", f"127.0.0.1:{port}"))
    seen = server.finish()
    assert result.returncode == 0, result.stderr.decode()
    reported = facts(result.stdout.decode())
    assert reported["alpn"] == expected == (seen["alpn"] or "none")
    assert reported["protocol"] == seen["version"] == f"TLSv{version}"
    assert seen.get("refused", False) == (expected == "none")
