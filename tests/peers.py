"""Real TLS peers on loopback for the end-to-end tests.

Servers serve files from a directory over HTTPS, pinned to one TLS version:
Python's ssl (a threaded http.server), `openssl s_server -WWW`, nginx, and
tlslite-ng for the one handshake layout OpenSSL never sends. They present
the PKI's `localhost` certificate. Clients (Python ssl, curl, `openssl
s_client`) fetch from a guest server and report what they saw (`Seen`).
"""

from __future__ import annotations

import http.server
import re
import shutil
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from pki import TLS_VERSIONS, Leaf, Pki

from wasi_tls_host.conformance.peers import (  # noqa: F401 - re-exported for the tests
    digest,
    free_port,
    iana_code,
    openssl_flag,
    wait_for_port,
)


class PythonHttps:
    """http.server over ssl, HTTP/1.1 with Content-Length."""

    name = "python"

    def __init__(self, pki: Pki, root: Path, version: str):
        context = pki.server_context(pki["localhost"], version)
        handler = _file_handler(root)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _file_handler(root: Path):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802
            path = root / self.path.lstrip("/")
            if not path.is_file():
                self.send_error(404)
                return
            body = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass
    return Handler


class OpenSSLServer:
    """`openssl s_server -WWW`: HTTP/1.0 responses delimited by connection close."""

    name = "openssl"

    def __init__(self, pki: Pki, root: Path, version: str):
        leaf = pki["localhost"]
        self.port = free_port()
        self.process = subprocess.Popen(
            ["openssl", "s_server", "-quiet", "-accept", f"127.0.0.1:{self.port}",
             "-cert", str(leaf.cert_file), "-key", str(leaf.key_file), "-WWW",
             openssl_flag(version)],
            cwd=root, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        wait_for_port(self.port, self.process)

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


class Nginx:
    """nginx serving `root` over HTTPS pinned to one TLS version, HTTP/1.1
    with keep-alive and Content-Length; its own files beside the PKI's.
    `leaf` is its certificate (default: the PKI's localhost); with
    `client_ca` it requires a client certificate issued by it, and
    /client-cert answers nginx's verdict on the one it got."""

    name = "nginx"

    def __init__(self, pki: Pki, root: Path, version: str, *, leaf: Leaf | None = None,
                 client_ca: Path | None = None):
        leaf = leaf or pki["localhost"]
        self.port = free_port()
        prefix = pki.directory / f"nginx-{self.port}"
        (prefix / "logs").mkdir(parents=True, exist_ok=True)
        client_auth = (f"ssl_client_certificate {client_ca}; ssl_verify_client on;"
                       if client_ca else "")
        config = prefix / "nginx.conf"
        config.write_text(f"""
            daemon off;
            master_process off;
            user root;
            error_log stderr warn;
            pid {prefix}/nginx.pid;
            events {{ worker_connections 64; }}
            http {{
                access_log off;
                client_body_temp_path {prefix}/body;
                proxy_temp_path {prefix}/proxy;
                fastcgi_temp_path {prefix}/fastcgi;
                uwsgi_temp_path {prefix}/uwsgi;
                scgi_temp_path {prefix}/scgi;
                server {{
                    listen 127.0.0.1:{self.port} ssl;
                    ssl_certificate {leaf.cert_file};
                    ssl_certificate_key {leaf.key_file};
                    ssl_protocols TLSv{version};
                    {client_auth}
                    root {root};
                    location /client-cert {{ return 200 "$ssl_client_verify"; }}
                }}
            }}
        """)
        self.process = subprocess.Popen(
            [nginx_binary(), "-p", str(prefix), "-c", str(config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_port(self.port, self.process)

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def openssl_client_hello(server_name: str | None = "example.com", alpn: tuple[str, ...] = (),
                         maximum: ssl.TLSVersion | None = None,
                         post_handshake_auth: bool = False) -> bytes:
    """The first flight of an OpenSSL client with these settings: its
    ClientHello record(s), as a peer would receive them."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    if alpn:
        context.set_alpn_protocols(list(alpn))
    if maximum is not None:
        context.maximum_version = maximum
    context.post_handshake_auth = post_handshake_auth
    outgoing = ssl.MemoryBIO()
    client = context.wrap_bio(ssl.MemoryBIO(), outgoing, server_hostname=server_name)
    try:
        client.do_handshake()
    except ssl.SSLWantReadError:
        return outgoing.read()
    raise AssertionError("an OpenSSL client finished a handshake without a server")


def nginx_binary() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


class TlsliteServer:
    """A tlslite-ng server on loopback for one handshake. Unlike OpenSSL, its
    TLS 1.3 server packs its encrypted flight (EncryptedExtensions through
    Finished) into one record. `client_chain` is what the client sent."""

    def __init__(self, leaf: Leaf, version: str, *, request_certificate: bool):
        from tlslite.api import HandshakeSettings, TLSConnection, X509CertChain, parsePEMKey
        chain = X509CertChain()
        chain.parsePemList(b"".join(blob.bytes() for blob in leaf.cert_chain_pems).decode())
        key = parsePEMKey(leaf.private_key_pem.bytes().decode(), private=True)
        settings = HandshakeSettings()
        settings.minVersion = settings.maxVersion = divmod(TLS_VERSIONS[version].value, 256)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.client_chain = None
        self.error: Exception | None = None

        def serve() -> None:
            raw, _ = self.listener.accept()
            connection = TLSConnection(raw)
            try:
                connection.handshakeServer(certChain=chain, privateKey=key,
                                           reqCert=request_certificate, settings=settings)
                if connection.session.clientCertChain is not None:
                    self.client_chain = [cert.bytes for cert in
                                         connection.session.clientCertChain.x509List]
                connection.close()
            except Exception as error:  # recorded for the test to inspect
                self.error = error
            finally:
                raw.close()
        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.listener.close()
        self.thread.join(10)


# -- TLS clients as peers: each returns what it saw -----------------------------------

@dataclass
class Seen:
    """A client's view of one HTTPS exchange."""

    response: bytes  # status line, headers and body
    protocol: str | None  # "TLSv1.3"
    cipher: str | None  # OpenSSL's name
    alpn: str | None = None
    server_certificate: bytes | None = None  # DER of the leaf the server sent

    @property
    def status(self) -> int:
        return int(self.response.split(b" ", 2)[1])

    @property
    def body(self) -> str:
        head, _, rest = self.response.partition(b"\r\n\r\n")
        length = re.search(rb"(?i)content-length: (\d+)", head)
        return rest[:int(length.group(1))].decode()  # s_client prints more after it


def python_https_get(port: int, server_name: str, path: str, context: ssl.SSLContext) -> Seen:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw, \
            context.wrap_socket(raw, server_hostname=server_name) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: {server_name}\r\n"
                     "Connection: close\r\n\r\n".encode())
        response = bytearray()
        while data := conn.recv(65536):
            response += data
        cipher = conn.cipher()
        return Seen(bytes(response), conn.version(), cipher[0] if cipher else None,
                    conn.selected_alpn_protocol(), conn.getpeercert(binary_form=True))


def curl_https_get(port: int, server_name: str, path: str, version: str, pki: Pki,
                   leaf: Leaf | None = None) -> Seen:
    """curl pinned to `version`, presenting `leaf` if given, resolving the name
    to loopback; it verifies the name itself."""
    command = ["curl", "-sS", "-v", "-i", "--http1.1", f"--tlsv{version}", "--tls-max", version,
               "--cacert", str(pki.ca_file), "--resolve", f"{server_name}:{port}:127.0.0.1",
               f"https://{server_name}:{port}{path}"]
    if leaf is not None:
        command += ["--cert", str(leaf.cert_file), "--key", str(leaf.key_file)]
    result = subprocess.run(command, capture_output=True, timeout=60)
    log = result.stderr.decode()
    session = re.search(r"SSL connection using (\S+) / (\S+)", log)
    alpn = re.search(r"ALPN: server accepted (\S+)", log)
    return Seen(result.stdout, session and session.group(1), session and session.group(2),
                alpn and alpn.group(1))


def openssl_https_get(port: int, server_name: str, path: str, version: str, pki: Pki,
                      leaf: Leaf | None = None) -> Seen:
    """`openssl s_client` pinned to `version`, presenting `leaf` if given,
    checking the chain and the name; the request on stdin."""
    command = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername",
               server_name, "-verify_hostname", server_name, "-CAfile", str(pki.ca_file),
               "-verify_return_error", "-ign_eof", "-alpn", "http/1.1", openssl_flag(version)]
    if leaf is not None:
        command += ["-cert", str(leaf.cert_file), "-key", str(leaf.key_file)]
    request = f"GET {path} HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n"
    result = subprocess.run(command, input=request.encode(), capture_output=True, timeout=60)
    out = result.stdout
    start = out.find(b"HTTP/1.1 ")
    protocol = re.search(rb"Protocol\s*:\s*(\S+)", out)
    cipher = re.search(rb"Cipher\s*:\s*(\S+)", out)
    alpn = re.search(rb"ALPN protocol: (\S+)", out)
    return Seen(out[start:] if start >= 0 else b"",
                protocol and protocol.group(1).decode(), cipher and cipher.group(1).decode(),
                alpn and alpn.group(1).decode())


def fingerprint(der: bytes) -> str:
    """A certificate's fingerprint as the guests print it."""
    return f"sha256:{digest(der)}"


def facts(report: str) -> dict[str, str]:
    """A guest's report, one `name: value` per line, as a dict."""
    return dict(line.split(": ", 1) for line in report.splitlines())

