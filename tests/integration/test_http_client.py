"""wasi:http outgoing requests through the installed `wasi-tls-host run`.

The guest is http-fetch (componentize-py, generated wasi:http bindings), and
at the end a JavaScript fetch() (ComponentizeJS) under the same policy.
Peers are real servers on loopback: an h11 server over Python's ssl (one
that answers what the tests ask), nginx, and raw sockets that misbehave.
Every TLS case runs under TLS 1.2 and 1.3. Each failure must be the right
error-code, printed by the guest, never a trap.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
from http_peers import H11Server, RawServer, body_bytes, hold, read_head, sha256
from js_components import build_js_components

from conftest import HOST, ROOT, run_host
from peers import Nginx, OpenSSLServer, free_port

MIB = 1 << 20
#: A failure must be reported well within this, the guest's own start included.
FAILURE_BUDGET_S = 60


@pytest.fixture(scope="module")
def fetch_guest(guests):
    return guests["http-fetch"]


def fetch(guest, url: str, *args: str, flags=(), stdin: bytes | None = None,
          timeout: float = 120) -> subprocess.CompletedProcess:
    return run_host(guest, *args, url, flags=tuple(flags), stdin=stdin, timeout=timeout)


class Fetched:
    """http-fetch's report: status, headers, body size and digest, trailers."""

    def __init__(self, result: subprocess.CompletedProcess):
        assert result.returncode == 0, result.stderr.decode()
        lines = result.stdout.decode().splitlines()
        self.status = int(lines[0].removeprefix("HTTP "))
        body_index = next(i for i, line in enumerate(lines) if line.startswith("body: "))
        self.headers = [tuple(line.split(": ", 1)) for line in lines[1:body_index]]
        size, digest = lines[body_index].removeprefix("body: ").split(" bytes sha256=")
        self.body_size, self.body_sha256 = int(size), digest
        self.trailers = [tuple(line.removeprefix("trailer ").split(": ", 1))
                         for line in lines[body_index + 1:]]

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name), None)


def failure(result: subprocess.CompletedProcess) -> str:
    """The guest's error line (it must have failed cleanly, exit 1, no trap)."""
    stderr = result.stderr.decode()
    assert result.returncode == 1, (result.returncode, stderr)
    assert "trapped" not in stderr and "Traceback" not in stderr, stderr
    return stderr.strip().splitlines()[-1]


@pytest.fixture
def leaf(pki):
    return pki.leaf("localhost", "127.0.0.1")


def https_server(pki, leaf, version, **settings) -> H11Server:
    context = pki.server_context(leaf, version, **settings)
    context.set_alpn_protocols(["h2", "http/1.1"])
    return H11Server(context)


def trusting(pki, port: int, *extra: str) -> tuple[str, ...]:
    return ("--ca-file", str(pki.ca_file), "--allow-net", f"localhost:{port}", *extra)


# -- plain http --------------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, 100_000])
def test_http_get(fetch_guest, size):
    server = H11Server()
    try:
        fetched = Fetched(fetch(fetch_guest, f"http://127.0.0.1:{server.port}/bytes/{size}",
                                flags=("--allow-net", f"127.0.0.1:{server.port}")))
    finally:
        server.close()
    assert fetched.status == 200
    assert (fetched.body_size, fetched.body_sha256) == (size, sha256(body_bytes(size)))


def test_the_host_writes_the_framing_and_host_headers(fetch_guest):
    server = H11Server()
    try:
        fetched = Fetched(fetch(fetch_guest, f"http://localhost:{server.port}/echo?q=1",
                                "-H", "X-Custom: one", "-H", "x-custom: two",
                                flags=("--allow-net", f"localhost:{server.port}")))
    finally:
        server.close()
    (seen,) = server.seen
    assert seen.target == "/echo?q=1"
    assert seen.header("host") == f"localhost:{server.port}"
    assert seen.header("connection") == "close"
    assert [value for name, value in seen.headers if name == "x-custom"] == ["one", "two"]
    assert fetched.header("x-seen-host") == f"localhost:{server.port}"


def test_head_has_no_body(fetch_guest):
    server = H11Server()
    try:
        fetched = Fetched(fetch(fetch_guest, f"http://127.0.0.1:{server.port}/bytes/5000",
                                "-X", "HEAD", flags=("--allow-net", f"127.0.0.1:{server.port}")))
    finally:
        server.close()
    assert fetched.header("content-length") == "5000"
    assert fetched.body_size == 0


def test_trailers_arrive_and_are_sent(fetch_guest):
    server = H11Server()
    flags = ("--allow-net", f"127.0.0.1:{server.port}")
    try:
        received = Fetched(fetch(fetch_guest, f"http://127.0.0.1:{server.port}/chunked/70000",
                                 flags=flags))
        sent = Fetched(fetch(fetch_guest, f"http://127.0.0.1:{server.port}/sha256",
                             "-X", "POST", "--data-stdin", "--trailer", "x-check: 42",
                             flags=flags, stdin=b"payload"))
    finally:
        server.close()
    assert received.trailers == [("x-sha256", sha256(body_bytes(70000)))]
    assert received.body_sha256 == sha256(body_bytes(70000))
    assert "transfer-encoding" not in {name.lower() for name, _ in received.headers}
    assert sent.header("x-body-sha256") == sha256(b"payload")
    assert sent.header("x-trailers") == "x-check=42"
    assert server.seen[1].header("transfer-encoding") == "chunked"


def test_a_forbidden_header_is_the_guests_error(fetch_guest):
    result = fetch(fetch_guest, "http://127.0.0.1:1/", "-H", "Host: elsewhere",
                   flags=("--allow-net", "127.0.0.1"))
    assert failure(result) == "error: header-error: forbidden"


# -- https -------------------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 16384, 16385, MIB])
def test_https_get(fetch_guest, pki, leaf, version, size):
    server = https_server(pki, leaf, version)
    try:
        fetched = Fetched(fetch(fetch_guest, f"https://localhost:{server.port}/bytes/{size}",
                                flags=trusting(pki, server.port)))
    finally:
        server.close()
    assert fetched.status == 200
    assert (fetched.body_size, fetched.body_sha256) == (size, sha256(body_bytes(size)))
    assert server.seen[0].alpn == "http/1.1"


def test_https_from_nginx(fetch_guest, pki, leaf, version, tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    (root / "file.bin").write_bytes(body_bytes(MIB + 3))
    server = Nginx(pki, root, version, leaf=leaf)
    try:
        fetched = Fetched(fetch(fetch_guest, f"https://localhost:{server.port}/file.bin",
                                flags=trusting(pki, server.port)))
        missing = Fetched(fetch(fetch_guest, f"https://localhost:{server.port}/none",
                                flags=trusting(pki, server.port)))
    finally:
        server.close()
    assert fetched.body_sha256 == sha256(body_bytes(MIB + 3))
    assert missing.status == 404


def test_https_from_openssl_ends_the_body_by_closing(fetch_guest, pki, version, tmp_path):
    """`openssl s_server -WWW` answers in HTTP/1.0 without a length: the body
    ends with the connection, which close_notify vouches for."""
    (tmp_path / "file.bin").write_bytes(body_bytes(200_000))
    server = OpenSSLServer(pki, tmp_path, version)
    try:
        fetched = Fetched(fetch(fetch_guest, f"https://localhost:{server.port}/file.bin",
                                flags=trusting(pki, server.port)))
    finally:
        server.close()
    assert fetched.header("content-length") is None
    assert fetched.body_sha256 == sha256(body_bytes(200_000))


def test_sixteen_mebibytes_each_way(fetch_guest, pki, leaf, version):
    server = https_server(pki, leaf, version)
    upload = body_bytes(16 * MIB + 1)
    try:
        down = Fetched(fetch(fetch_guest, f"https://localhost:{server.port}/bytes/{16 * MIB}",
                             flags=trusting(pki, server.port)))
        up = Fetched(fetch(fetch_guest, f"https://localhost:{server.port}/sha256",
                           "-X", "PUT", "--data-stdin", flags=trusting(pki, server.port),
                           stdin=upload))
    finally:
        server.close()
    assert (down.body_size, down.body_sha256) == (16 * MIB, sha256(body_bytes(16 * MIB)))
    assert up.header("x-body-size") == str(len(upload))
    assert up.header("x-body-sha256") == sha256(upload)


def test_untrusted_server_is_refused(fetch_guest, pki, version):
    stranger = pki.leaf("localhost", trusted=False)
    server = https_server(pki, stranger, version)
    try:
        with_ca = fetch(fetch_guest, f"https://localhost:{server.port}/bytes/1",
                        flags=trusting(pki, server.port))
        default_trust = fetch(fetch_guest, f"https://localhost:{server.port}/bytes/1",
                              flags=("--allow-net", f"localhost:{server.port}"))
    finally:
        server.close()
    assert failure(with_ca) == "error: TLS-certificate-error"
    assert failure(default_trust) == "error: TLS-certificate-error"
    assert server.seen == []


def test_wrong_name_and_expired_certificate_are_refused(fetch_guest, pki, version):
    for leaf in (pki.leaf("other.example"), pki.leaf("localhost", expired=True)):
        server = https_server(pki, leaf, version)
        try:
            result = fetch(fetch_guest, f"https://localhost:{server.port}/bytes/1",
                           flags=trusting(pki, server.port))
        finally:
            server.close()
        assert failure(result) == "error: TLS-certificate-error"


def test_outside_allow_net_is_denied(fetch_guest, pki, leaf):
    server = https_server(pki, leaf, "1.3")
    url = f"https://localhost:{server.port}/bytes/1"
    try:
        other_port = fetch(fetch_guest, url, flags=trusting(pki, server.port + 1))
        other_host = fetch(fetch_guest, url, flags=("--ca-file", str(pki.ca_file),
                                                    "--allow-net", "127.0.0.2"))
        no_network = fetch(fetch_guest, url, flags=("--ca-file", str(pki.ca_file)))
        literal = fetch(fetch_guest, f"https://127.0.0.1:{server.port}/bytes/1",
                        flags=("--ca-file", str(pki.ca_file), "--allow-net", "127.0.0.2"))
    finally:
        server.close()
    for result in (other_port, other_host, no_network, literal):
        assert failure(result) == "error: HTTP-request-denied"
    assert server.seen == []


def test_client_identity_is_presented_when_asked(fetch_guest, pki, leaf, version):
    client = pki.leaf("client.example")
    server = https_server(pki, leaf, version, client_auth=ssl.CERT_REQUIRED)
    url = f"https://localhost:{server.port}/client-cert"
    try:
        with_identity = Fetched(fetch(fetch_guest, url, flags=trusting(
            pki, server.port, "--http-client-identity",
            f"LocalHost={client.cert_file},{client.key_file}")))
        without = fetch(fetch_guest, url, flags=trusting(pki, server.port))
    finally:
        server.close()
    assert with_identity.header("x-client-subject") == "client.example"
    alert = {"1.2": "alert-id=40, alert-message='peer sent alert: handshake failure "
                    "[SSLV3_ALERT_HANDSHAKE_FAILURE]'",
             "1.3": "alert-id=116, alert-message='peer sent alert: certificate required "
                    "[TLSV13_ALERT_CERTIFICATE_REQUIRED]'"}[version]
    assert failure(without) == f"error: TLS-alert-received({alert})"


def test_client_identity_with_nginx(fetch_guest, pki, leaf, version, tmp_path):
    client = pki.leaf("client.example")
    server = Nginx(pki, tmp_path, version, leaf=leaf, client_ca=pki.ca_file)
    url = f"https://localhost:{server.port}/client-cert"
    try:
        result = fetch(fetch_guest, url, flags=trusting(
            pki, server.port, "--http-client-identity",
            f"localhost={client.cert_file},{client.key_file}"))
        refused = Fetched(fetch(fetch_guest, url, flags=trusting(pki, server.port)))
    finally:
        server.close()
    # nginx says SUCCESS for a verified certificate, and answers a missing
    # one with its own 400 page.
    assert Fetched(result).body_sha256 == sha256(b"SUCCESS")
    assert refused.status == 400


def test_identity_for_an_address_literal(fetch_guest, pki, leaf):
    client = pki.leaf("client.example")
    server = https_server(pki, leaf, "1.3", client_auth=ssl.CERT_REQUIRED)
    try:
        fetched = Fetched(fetch(fetch_guest, f"https://127.0.0.1:{server.port}/client-cert",
                                flags=("--ca-file", str(pki.ca_file), "--allow-net",
                                       f"127.0.0.1:{server.port}", "--http-client-identity",
                                       f"127.0.0.1={client.cert_file},{client.key_file}")))
    finally:
        server.close()
    assert fetched.header("x-client-subject") == "client.example"


def test_identity_for_another_host_is_not_presented(fetch_guest, pki, leaf):
    client = pki.leaf("client.example")
    server = https_server(pki, leaf, "1.3", client_auth=ssl.CERT_OPTIONAL)
    try:
        fetched = Fetched(fetch(fetch_guest, f"https://localhost:{server.port}/client-cert",
                                flags=trusting(pki, server.port, "--http-client-identity",
                                               f"elsewhere={client.cert_file},{client.key_file}")))
    finally:
        server.close()
    assert fetched.header("x-client-subject") == "none"


def test_tls_keylog(fetch_guest, pki, leaf, version, tmp_path):
    keylog = tmp_path / "keys.log"
    server = https_server(pki, leaf, version)
    try:
        Fetched(fetch(fetch_guest, f"https://localhost:{server.port}/bytes/1",
                      flags=trusting(pki, server.port, "--tls-keylog", str(keylog))))
    finally:
        server.close()
    label = "CLIENT_RANDOM" if version == "1.2" else "CLIENT_TRAFFIC_SECRET_0"
    assert label in keylog.read_text()


# -- error codes ---------------------------------------------------------------------

def test_connection_refused(fetch_guest):
    port = free_port()
    result = fetch(fetch_guest, f"http://127.0.0.1:{port}/", flags=("--allow-net", "127.0.0.1"))
    assert failure(result) == "error: connection-refused"


def test_unresolvable_name(fetch_guest):
    result = fetch(fetch_guest, "http://no-such-host.invalid/", flags=("--inherit-network",),
                   timeout=FAILURE_BUDGET_S)
    assert failure(result).startswith("error: DNS-error(rcode=")


def test_connect_timeout_covers_the_tls_handshake(fetch_guest, pki):
    server = RawServer(hold(30))
    try:
        result = fetch(fetch_guest, f"https://localhost:{server.port}/",
                       "--connect-timeout", "0.5", flags=trusting(pki, server.port),
                       timeout=FAILURE_BUDGET_S)
    finally:
        server.close()
    assert failure(result) == "error: connection-timeout"


def test_first_byte_timeout(fetch_guest):
    def read_then_wait(sock):
        read_head(sock)
        threading.Event().wait(30)
    server = RawServer(read_then_wait)
    try:
        result = fetch(fetch_guest, f"http://127.0.0.1:{server.port}/",
                       "--first-byte-timeout", "0.5",
                       flags=("--allow-net", f"127.0.0.1:{server.port}"), timeout=FAILURE_BUDGET_S)
    finally:
        server.close()
    assert failure(result) == "error: connection-read-timeout"


def test_between_bytes_timeout(fetch_guest):
    def stall_in_body(sock):
        read_head(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
        threading.Event().wait(30)
    server = RawServer(stall_in_body)
    try:
        result = fetch(fetch_guest, f"http://127.0.0.1:{server.port}/",
                       "--between-bytes-timeout", "0.5",
                       flags=("--allow-net", f"127.0.0.1:{server.port}"), timeout=FAILURE_BUDGET_S)
    finally:
        server.close()
    line = failure(result)
    assert line.startswith("error: connection-read-timeout: ")
    assert "HTTP 200" in result.stdout.decode()


def truncate(sock):
    read_head(sock)
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")


def test_truncated_response(fetch_guest):
    server = RawServer(truncate)
    try:
        result = fetch(fetch_guest, f"http://127.0.0.1:{server.port}/",
                       flags=("--allow-net", f"127.0.0.1:{server.port}"))
    finally:
        server.close()
    assert failure(result).startswith("error: HTTP-response-incomplete: HTTP protocol error "
                                      "from the peer: peer closed connection without sending "
                                      "complete message body")


def test_truncated_tls_response(fetch_guest, pki, leaf, version):
    context = pki.server_context(leaf, version)
    server = RawServer(truncate, context)
    try:
        result = fetch(fetch_guest, f"https://localhost:{server.port}/",
                       flags=trusting(pki, server.port))
    finally:
        server.close()
    # The TLS core's reason reaches the guest through http-error-code's io-error.
    assert failure(result) == ("error: HTTP-response-incomplete: peer closed without "
                               "close_notify (truncated)")


def test_a_response_that_is_not_http(fetch_guest):
    def garbage(sock):
        read_head(sock)
        sock.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    server = RawServer(garbage)
    try:
        result = fetch(fetch_guest, f"http://127.0.0.1:{server.port}/",
                       flags=("--allow-net", f"127.0.0.1:{server.port}"))
    finally:
        server.close()
    assert failure(result) == "error: HTTP-protocol-error"


def test_a_server_that_closes_without_answering(fetch_guest):
    server = RawServer(read_head)
    try:
        result = fetch(fetch_guest, f"http://127.0.0.1:{server.port}/",
                       flags=("--allow-net", f"127.0.0.1:{server.port}"))
    finally:
        server.close()
    assert failure(result) == "error: connection-terminated"


def test_https_to_a_plain_server(fetch_guest, pki):
    def answer_in_plain_http(sock):
        sock.recv(4096)
        sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    server = RawServer(answer_in_plain_http)
    try:
        result = fetch(fetch_guest, f"https://localhost:{server.port}/bytes/1",
                       flags=trusting(pki, server.port))
    finally:
        server.close()
    assert failure(result) == "error: TLS-protocol-error"


def test_unsupported_scheme(fetch_guest):
    result = fetch(fetch_guest, "ftp://127.0.0.1:21/", flags=("--allow-net", "127.0.0.1"))
    assert failure(result) == "error: HTTP-protocol-error"


# -- the command line ----------------------------------------------------------------

@pytest.mark.parametrize("value, message", [
    ("localhost", "expected NAME=CERTFILE,KEYFILE"),
    ("localhost=/no/such.pem,/no/such.key", "identity 'localhost'"),
])
def test_a_bad_http_client_identity_is_a_usage_error(fetch_guest, value, message):
    result = subprocess.run([HOST, "run", "--http-client-identity", value, str(fetch_guest)],
                            capture_output=True, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr.decode()


@pytest.mark.parametrize("hosts, message", [
    (("Example.com", "example.com"), "--http-client-identity takes each HOST once"),
    (("[::1]", "0:0::1"), "--http-client-identity takes each HOST once"),
    (("example.com:443",), "--http-client-identity example.com:443: give the HOST alone, "
                           "no port"),
])
def test_http_client_identity_hosts(fetch_guest, pki, hosts, message):
    client = pki.leaf("client.example")
    flags = [arg for host in hosts
             for arg in ("--http-client-identity", f"{host}={client.cert_file},{client.key_file}")]
    result = subprocess.run([HOST, "run", *flags, str(fetch_guest)], capture_output=True,
                            timeout=60)
    assert result.returncode == 2
    assert result.stderr.decode().strip() == f"wasi-tls-host: {message}"


# -- a JavaScript fetch() (ComponentizeJS) through the same host -----------------------

@pytest.mark.js
def test_js_fetch_over_https_on_the_hosts_policy(pki, leaf, version):
    """fetch() in a StarlingMonkey component: it trusts --ca-file, presents
    --http-client-identity to a server that requires one, and is refused
    without the CA, without the identity and outside --allow-net. JavaScript
    sees every refusal as a TypeError ("NetworkError"), so the server's log
    is what shows where each one stopped."""
    js_fetch = build_js_components().fetch
    client = pki.leaf("client.example")
    identity = ("--http-client-identity", f"localhost={client.cert_file},{client.key_file}")
    server = https_server(pki, leaf, version, client_auth=ssl.CERT_REQUIRED)
    url = f"https://localhost:{server.port}/client-cert"
    try:
        trusted = run_host(js_fetch, url, flags=trusting(pki, server.port, *identity))
        served = len(server.seen)
        no_ca = run_host(js_fetch, url, flags=("--allow-net", f"localhost:{server.port}",
                                               *identity))
        no_identity = run_host(js_fetch, url, flags=trusting(pki, server.port))
        not_allowed = run_host(js_fetch, url, flags=trusting(pki, server.port + 1, *identity))
    finally:
        server.close()
    assert trusted.returncode == 0, trusted.stderr.decode()
    assert "header x-client-subject: client.example" in trusted.stdout.decode().splitlines()
    assert served == 1
    for refused in (no_ca, no_identity, not_allowed):
        assert refused.returncode == 1, refused.stderr.decode()
        assert "NetworkError" in refused.stderr.decode()
        assert "trapped" not in refused.stderr.decode()
    assert "denied connect to 127.0.0.1" in not_allowed.stderr.decode()
    assert len(server.seen) == served  # none of the refused requests got through


# -- the README's example ------------------------------------------------------------

@pytest.mark.js
def test_the_readme_fetch_example_runs_as_printed(fetch_guest, tmp_path):
    """The shell block of the README's section on `run` with wasi:http, run by
    bash in an empty directory with the installed host first on PATH: each
    command prints what the README's comments say it prints."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Outgoing HTTP from a component", 1)[1].split("\n## ", 1)[0]
    script = section.split("```sh\n", 1)[1].split("```", 1)[0]
    port = str(free_port())
    # A person waits for the server to start before typing the next line.
    wait = f"until (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null; do sleep 0.1; done\n"
    script = (script.replace("8443", port)
              .replace("build/guests/http-fetch.wasm", str(fetch_guest))
              .replace("build/js/fetch.wasm", str(build_js_components().fetch))
              .replace(" -WWW &\n", f" -WWW &\nserver=$!\n{wait}", 1))
    script += "kill $server\n"
    environment = dict(os.environ, PATH=f"{Path(HOST).parent}:{os.environ['PATH']}")
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=environment,
                            capture_output=True, timeout=300)
    stdout, stderr = result.stdout.decode(), result.stderr.decode()
    ca_size = (tmp_path / "pki" / "client.pem").stat().st_size
    assert f"HTTP 200\nContent-type: text/plain\nbody: {ca_size} bytes sha256=" in stdout, stdout
    assert "status 200" in stdout.splitlines()
    assert stderr.strip().splitlines()[-1] == "error: TLS-certificate-error", stderr
    assert "trapped" not in stderr
