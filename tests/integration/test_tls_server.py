"""Guests serving TLS through wasi-tls-host:tls, against real clients on
loopback (curl, `openssl s_client`, Python ssl), under TLS 1.2 and 1.3: SNI,
ALPN, client certificates in and after the handshake, every getter against
what the client saw, and a hundred connections at once."""

from __future__ import annotations

import os
import socket
import ssl
import threading

import pytest
from pki import der_chain

from conftest import GuestServer
from peers import (
    curl_https_get,
    facts,
    fingerprint,
    iana_code,
    openssl_https_get,
    python_https_get,
)

CLIENTS = ["curl", "openssl", "python"]


@pytest.fixture(scope="module")
def site(pki):
    """Two server identities of different key types, and a client identity."""
    a, b = pki.leaf("a.example", key_type="ecdsa"), pki.leaf("b.example", key_type="rsa")
    client = pki.leaf("client.example")
    return {"a": a, "b": b, "client": client,
            "client_fingerprint": fingerprint(der_chain(client)[0]),
            "stranger": pki.leaf("client.example", trusted=False)}


def https_server(guests, pki, site, *args: str) -> GuestServer:
    identities = [f"{name}.example={site[name].cert_file},{site[name].key_file}"
                  for name in ("a", "b")]
    return GuestServer(guests["https-server"], "127.0.0.1:0", *args, flags=(
        "--allow-net", "127.0.0.1", "--client-ca", str(pki.ca_file),
        *(flag for identity in identities for flag in ("--identity", identity))))


def python_context(pki, version, leaf=None, alpn=("http/1.1",)):
    context = pki.client_context(version, leaf)
    context.set_alpn_protocols(list(alpn))
    context.post_handshake_auth = True
    return context


def fetch(client, pki, site, port, version, *, with_certificate, server_name="b.example",
          path="/"):
    leaf = site["client"] if with_certificate else None
    if client == "python":
        return python_https_get(port, server_name, path, python_context(pki, version, leaf))
    get = curl_https_get if client == "curl" else openssl_https_get
    return get(port, server_name, path, version, pki, leaf)


@pytest.mark.parametrize("with_certificate", [False, True], ids=["anonymous", "certificate"])
@pytest.mark.parametrize("client", CLIENTS)
def test_guest_server_with_real_clients(guests, pki, site, client, with_certificate, version):
    server = https_server(guests, pki, site, "--requests", "1", "--client-auth", "request")
    seen = fetch(client, pki, site, server.port, version, with_certificate=with_certificate)
    status, log, errors = server.finish()
    assert (status, seen.status) == (0, 200), errors
    expected_client = site["client_fingerprint"] if with_certificate else "none"
    assert facts(seen.body) == {
        "path": "/", "server name": "b.example", "alpn": "http/1.1",
        "protocol": seen.protocol, "cipher suite": f"0x{iana_code(seen.cipher):04x}",
        "client certificate": expected_client}
    assert seen.protocol == f"TLSv{version}"
    assert f"client={expected_client}" in log


def test_sni_chooses_the_certificate_the_client_sees(guests, pki, site, version):
    server = https_server(guests, pki, site, "--requests", "3")
    seen = {name: fetch("python", pki, site, server.port, version, with_certificate=False,
                        server_name=name) for name in ("a.example", "b.example")}
    unknown = python_https_get(server.port, "localhost", "/",
                               _unverified(python_context(pki, version)))
    assert server.finish()[0] == 0
    assert seen["a.example"].server_certificate == der_chain(site["a"])[0]
    assert seen["b.example"].server_certificate == der_chain(site["b"])[0]
    assert facts(unknown.body)["server name"] == "localhost"  # served, by the host's choice


def _unverified(context: ssl.SSLContext) -> ssl.SSLContext:
    context.check_hostname = False
    return context


def test_alpn_agreement_and_no_overlap(guests, pki, site, version):
    server = https_server(guests, pki, site, "--requests", "2", "--alpn", "http/1.1,h2")
    agreed = python_https_get(server.port, "b.example", "/",
                              python_context(pki, version, alpn=("h2", "http/1.1")))
    none = python_https_get(server.port, "b.example", "/",
                            python_context(pki, version, alpn=("spdy/3",)))
    assert server.finish()[0] == 0
    assert (agreed.alpn, facts(agreed.body)["alpn"]) == ("http/1.1", "http/1.1")  # ours first
    assert (none.alpn, facts(none.body)["alpn"]) == (None, "none")


def test_required_client_certificates(guests, pki, site, version):
    server = https_server(guests, pki, site, "--requests", "1", "--client-auth", "require")
    for refused in (None, site["stranger"]):
        try:
            seen = python_https_get(server.port, "b.example", "/",
                                    python_context(pki, version, refused))
        except (ssl.SSLError, ConnectionError):
            continue  # refused during the handshake
        assert seen.response == b""  # TLS 1.3: refused after the client's Finished
    accepted = fetch("python", pki, site, server.port, version, with_certificate=True)
    status, _, errors = server.finish()
    assert status == 0 and accepted.status == 200
    assert facts(accepted.body)["client certificate"] == site["client_fingerprint"]
    assert "connection 1: error: the client sent no certificate" in errors
    assert "connection 2: error:" in errors  # the untrusted certificate


def test_certificate_requested_after_the_handshake(guests, pki, site, version):
    server = https_server(guests, pki, site, "--requests", "2")
    with_certificate = fetch("python", pki, site, server.port, version,
                             with_certificate=True, path="/secure")
    without = fetch("python", pki, site, server.port, version,
                    with_certificate=False, path="/secure")
    assert server.finish()[0] == 0
    if version == "1.3":
        assert with_certificate.status == 200
        assert facts(with_certificate.body)["client certificate"] == site["client_fingerprint"]
    else:  # TLS 1.2 has no post-handshake authentication
        assert with_certificate.status == 403
    assert without.status == 403


def test_a_hundred_connections_at_once(guests, pki, site, version):
    count, size = 100, 64 * 1024
    server = GuestServer(guests["tls-echo-server"], "127.0.0.1:0", str(count), flags=(
        "--allow-net", "127.0.0.1",
        "--identity", f"server={site['b'].cert_file},{site['b'].key_file}"))
    context = pki.client_context(version)
    intact = []
    protocols = set()

    def echo() -> None:
        payload = os.urandom(size)
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as raw, \
                context.wrap_socket(raw, server_hostname="b.example") as conn:
            conn.sendall(payload)  # 64 KiB fits the socket buffers: no deadlock
            received = bytearray()
            while len(received) < size and (data := conn.recv(65536)):
                received += data
            protocols.add(conn.version())
            conn.unwrap()  # the guest answers close_notify with its own
        intact.append(bytes(received) == payload)
    clients = [threading.Thread(target=echo) for _ in range(count)]
    for client in clients:
        client.start()
    for client in clients:
        client.join(120)
    status, out, errors = server.finish()
    assert (status, sum(intact)) == (0, count), errors
    assert out.strip() == f"served {count} connections, {count * size} bytes"
    assert protocols == {f"TLSv{version}"}
