"""Alerts on the wire, as real peers read them, from guests under
`wasi-tls-host run` (TLS 1.2 and 1.3): `openssl s_client -msg` and
`s_server -msg` print each alert they read, Python's ssl names it in its
error. A refusal says what RFC 8446/5246 prescribe, protected once the
peer reads with keys; bytes that are not a ClientHello get what OpenSSL
says to them; what OpenSSL answers while a guest only reads (a KeyUpdate,
a refused renegotiation) reaches the peer without other traffic."""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import warnings

import pytest
from lockstep import LIBSSL, SSL_KEY_UPDATE_REQUESTED, ssl_pointer
from pki import TLS_VERSIONS

from conftest import GuestServer, run_host
from peers import free_port, openssl_flag, wait_for_port
from wasi_tls_host.tls.records import ContentType, HandshakeType

VERSION_CODES = {"1.2": 0x0303, "1.3": 0x0304}
#: What OpenSSL calls the alert a server sends for a missing client certificate.
CERTIFICATE_REQUIRED = {"1.2": ("handshake_failure", "SSLV3_ALERT_HANDSHAKE_FAILURE"),
                        "1.3": ("certificate_required", "TLSV13_ALERT_CERTIFICATE_REQUIRED")}


@pytest.fixture(scope="module")
def site(pki):
    return {"server": pki.leaf("b.example"), "client": pki.leaf("client.example"),
            "stranger": pki.leaf("client.example", trusted=False),
            "expired": pki.leaf("client.example", expired=True)}


def https_server(guests, pki, site, *args: str) -> GuestServer:
    leaf = site["server"]
    return GuestServer(guests["https-server"], "127.0.0.1:0", *args, flags=(
        "--allow-net", "127.0.0.1", "--client-ca", str(pki.ca_file),
        "--identity", f"b.example={leaf.cert_file},{leaf.key_file}"))


@pytest.fixture(scope="module")
def requiring(guests, pki, site):
    """https-server asking every client for a certificate, refusing one without."""
    server = https_server(guests, pki, site, "--client-auth", "require")
    yield server
    server.close()


@pytest.fixture(scope="module")
def serving(guests, pki, site):
    """https-server asking for nothing."""
    server = https_server(guests, pki, site)
    yield server
    server.close()


def alerts_read(output: str) -> list[str]:
    """The alerts an `openssl -msg` peer read ("fatal certificate_required")."""
    return re.findall(r"^<<< TLS [\d.]+, Alert \[length 0002\], (\w+ \w+)$", output, re.M)


def openssl_client(port: int, version: str, pki, *flags: str) -> str:
    """`openssl s_client -msg` that reads until the server closes; its stdout."""
    result = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "b.example",
         "-CAfile", str(pki.ca_file), "-msg", "-ign_eof", openssl_flag(version), *flags],
        input=b"", capture_output=True, timeout=60)
    return result.stdout.decode(errors="replace")


def python_client_error(port: int, context: ssl.SSLContext) -> ssl.SSLError:
    """How a Python client's request ends: the error names the alert it read."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        with pytest.raises(ssl.SSLError) as info:
            with context.wrap_socket(raw, server_hostname="b.example") as conn:
                conn.sendall(b"GET / HTTP/1.1\r\nHost: b.example\r\n\r\n")
                conn.recv(1)
    return info.value


# -- refusals --------------------------------------------------------------------

def test_a_missing_client_certificate_is_refused_as_the_version_prescribes(
        requiring, pki, version):
    """TLS 1.3: certificate_required, protected (it was a plaintext
    access_denied the client took for "bad record type"); TLS 1.2:
    handshake_failure, in the clear like the rest of that handshake."""
    name, reason = CERTIFICATE_REQUIRED[version]
    assert alerts_read(openssl_client(requiring.port, version, pki)) == [f"fatal {name}"]
    assert python_client_error(requiring.port, pki.client_context(version)).reason == reason


@pytest.mark.parametrize("certificate, name, reason", [
    ("stranger", "unknown_ca", "TLSV1_ALERT_UNKNOWN_CA"),
    ("expired", "certificate_expired", "SSLV3_ALERT_CERTIFICATE_EXPIRED"),
])
def test_a_client_certificate_openssl_refuses_gets_openssl_s_alert(
        requiring, pki, site, version, certificate, name, reason):
    leaf = site[certificate]
    output = openssl_client(requiring.port, version, pki, "-cert", str(leaf.cert_file),
                            "-key", str(leaf.key_file))
    assert alerts_read(output) == [f"fatal {name}"]
    context = pki.client_context(version, site[certificate])
    assert python_client_error(requiring.port, context).reason == reason


def test_a_guest_client_that_aborts_says_access_denied(guests, pki, site, version):
    """mtls-client --reject-server aborts at the server's chain, after the
    ServerHello: OpenSSL's client has not switched its write key yet (it does
    with its second flight), and s_server reads the plaintext alert."""
    port = free_port()
    leaf = pki["localhost"]
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(leaf.cert_file),
         "-key", str(leaf.key_file), "-msg", openssl_flag(version)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.PIPE)
    try:
        wait_for_port(port, server)
        client = site["client"]
        result = run_host(guests["mtls-client"], f"127.0.0.1:{port}", "localhost",
                          "--reject-server", flags=(
                              "--ca-file", str(pki.ca_file), "--allow-net", f"127.0.0.1:{port}",
                              "--identity", f"me={client.cert_file},{client.key_file}"))
    finally:
        server.kill()
        output = server.communicate()[0].decode(errors="replace")
    assert result.stderr.decode() == "error: the verify hook rejected the server's certificate\n"
    assert alerts_read(output) == ["fatal access_denied"]


# -- bytes that are no ClientHello ----------------------------------------------------

def send_raw(port: int, data: bytes) -> bytes:
    """Everything the server sends back until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        raw.sendall(data)
        received = bytearray()
        while chunk := raw.recv(4096):
            received += chunk
    return bytes(received)


@pytest.mark.parametrize("junk, answer", [
    pytest.param(b"GET / HTTP/1.1\r\nHost: b.example\r\n\r\n", b"", id="http"),
    pytest.param(bytes(range(64, 128)), b"", id="not-tls"),
    pytest.param(bytes.fromhex("1603010008" "0100000401020304"),
                 bytes.fromhex("15030300020232"), id="short-hello"),  # decode_error
    pytest.param(bytes.fromhex("1703030005") + b"hello",
                 bytes.fromhex("1503030002020a"), id="application-data"),  # unexpected_message
])
def test_bytes_that_are_no_client_hello_get_what_openssl_says(serving, junk, answer):
    """Never access_denied (the guest had no say). To bytes that are not TLS
    at all OpenSSL says nothing: it takes them for another protocol."""
    assert send_raw(serving.port, junk) == answer


def test_a_client_below_tls_1_2_gets_protocol_version(serving, pki):
    context = pki.client_context()
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # what this client plays
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    assert (python_client_error(serving.port, context).reason
            == "TLSV1_ALERT_PROTOCOL_VERSION")


# -- what OpenSSL answers while the guest only reads -----------------------------------

class Heard:
    """A Python client context's record of what it read, through the message callback."""

    def __init__(self, context: ssl.SSLContext):
        self.messages: list[tuple[int, int, bytes]] = []
        context._msg_callback = self.heard

    def heard(self, connection, direction, version, content_type, message_type, data):
        if direction == "read" and content_type in (ContentType.ALERT, ContentType.HANDSHAKE):
            self.messages.append((int(content_type), int(message_type), data))

    def alerts(self) -> list[bytes]:
        return [data for kind, _, data in self.messages if kind == ContentType.ALERT]


def idle_read(conn: ssl.SSLSocket) -> None:
    """Read while nothing but the server's answer can come: a timeout."""
    conn.settimeout(1.0)
    with pytest.raises(TimeoutError):
        conn.recv(1)


def test_a_key_update_is_answered_while_the_guest_only_reads(serving, pki):
    """TLS 1.3: the guest waits for a request head and writes nothing; the
    client's KeyUpdate asking for the server's gets it at once."""
    context = pki.client_context("1.3")
    heard = Heard(context)
    with socket.create_connection(("127.0.0.1", serving.port), timeout=30) as raw, \
            context.wrap_socket(raw, server_hostname="b.example") as conn:
        assert LIBSSL.SSL_key_update(ssl_pointer(conn, VERSION_CODES["1.3"]),
                                     SSL_KEY_UPDATE_REQUESTED) == 1
        conn.do_handshake()  # sends the KeyUpdate
        idle_read(conn)
        updates = [data for kind, message, data in heard.messages
                   if kind == ContentType.HANDSHAKE and message == HandshakeType.KEY_UPDATE]
        assert updates == [bytes((HandshakeType.KEY_UPDATE, 0, 0, 1, 0))]  # not requested
        conn.settimeout(30)
        conn.sendall(b"GET / HTTP/1.1\r\nHost: b.example\r\n\r\n")
        assert conn.recv(12) == b"HTTP/1.1 200"  # both sides took the new keys


def test_a_refused_renegotiation_is_answered_while_the_guest_only_reads(serving, pki):
    """TLS 1.2: OpenSSL refuses a client's renegotiation with a warning."""
    context = pki.client_context("1.2")
    heard = Heard(context)
    with socket.create_connection(("127.0.0.1", serving.port), timeout=30) as raw, \
            context.wrap_socket(raw, server_hostname="b.example") as conn:
        assert LIBSSL.SSL_renegotiate(ssl_pointer(conn, VERSION_CODES["1.2"])) == 1
        conn.settimeout(5.0)  # a timeout if the answer waited for other traffic
        with pytest.raises(ssl.SSLError) as refused:
            conn.do_handshake()  # sends its new ClientHello and waits for the answer
        assert refused.value.reason == "NO_RENEGOTIATION"
        assert heard.alerts() == [bytes((1, 100))]  # warning, no_renegotiation


@pytest.mark.parametrize("version", sorted(TLS_VERSIONS))
def test_the_operators_key_log_keeps_every_secret(guests, pki, site, version, tmp_path):
    """The host's key log callback sits in front of Python's where it is
    installed (a server that asks for the client's certificate, which may
    abort after its flight): --tls-keylog still gets each secret."""
    keylog = tmp_path / "keys.log"
    leaf = site["server"]
    server = GuestServer(guests["https-server"], "127.0.0.1:0", "--requests", "1",
                         "--client-auth", "request", flags=(
                             "--allow-net", "127.0.0.1", "--tls-keylog", str(keylog),
                             "--client-ca", str(pki.ca_file),
                             "--identity", f"b.example={leaf.cert_file},{leaf.key_file}"))
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw, \
                pki.client_context(version).wrap_socket(raw, server_hostname="b.example") \
                as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n")
            while conn.recv(65536):
                pass
        status, _, errors = server.finish()
    finally:
        server.close()
    assert status == 0, errors
    labels = {line.split()[0] for line in keylog.read_text().splitlines()
              if not line.startswith("#")}
    assert labels == ({"CLIENT_RANDOM"} if version == "1.2" else {
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0", "EXPORTER_SECRET"})
