"""`make demo`: a guest fetches a page over HTTPS, and a guest serves one.

Client half: starts a local HTTPS server on loopback with a throwaway CA
made by trustme, runs the bundled `https-get` guest with `wasi-tls-host run
--ca-file CA --allow-net localhost:PORT` and shows what the guest printed.

Server half: runs the bundled `https-server` guest with an identity the host
provisions (`--identity localhost=CERT,KEY`: the key never enters the guest)
and asks for client certificates (`--client-auth request`, verified against
`--client-ca`); a Python ssl client with a certificate fetches a page, and
both sides print what they saw: SNI, ALPN, protocol, cipher suite, and the
certificate the other side sent.
"""

from __future__ import annotations

import hashlib
import http.server
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import cast

import trustme

from .command_line import installed_command

ROOT = Path(__file__).resolve().parents[2]
GUESTS = ROOT / "build" / "guests"
GUEST = GUESTS / "https-get.wasm"
SERVER_GUEST = GUESTS / "https-server.wasm"
PAGE = (b"<!doctype html>\n<title>wasi-tls-host demo</title>\n"
        b"<p>Hello from the local HTTPS server. This page travelled over TLS that the host "
        b"terminated with Python's ssl on behalf of a WebAssembly guest.</p>\n")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - the http.server naming
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: object) -> None:
        print(f"  server: {self.command} {self.path} from {self.client_address[0]}")


def client_half(ca: trustme.CA, ca_file: Path) -> int:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_context)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"https://localhost:{port}/hello"
    command = [installed_command(), "run",
               "--ca-file", str(ca_file), "--allow-net", f"localhost:{port}",
               str(GUEST), "--print-body", url]
    print("== A guest fetches a page over HTTPS ==")
    print(f"HTTPS server on 127.0.0.1:{port} (certificate from a throwaway trustme CA)")
    print("$ wasi-tls-host run --ca-file demo-ca.pem "
          f"--allow-net localhost:{port} build/guests/https-get.wasm --print-body {url}")
    try:
        status = subprocess.run(command, timeout=120).returncode
    finally:
        server.shutdown()
        server.server_close()
    print(f"guest exited with status {status}")
    return status


def server_half(ca: trustme.CA, ca_file: Path) -> int:
    identity = ca.issue_cert("localhost")
    cert_file, key_file = ca_file.with_name("server.pem"), ca_file.with_name("server.key")
    identity.cert_chain_pems[0].write_to_path(str(cert_file))
    identity.private_key_pem.write_to_path(str(key_file))
    command = [installed_command(), "run", "--allow-net", "127.0.0.1",
               "--identity", f"localhost={cert_file},{key_file}",
               "--client-ca", str(ca_file),
               str(SERVER_GUEST), "127.0.0.1:0", "--requests", "1", "--client-auth", "request"]
    print("\n== A guest serves HTTPS ==")
    print("$ wasi-tls-host run --allow-net 127.0.0.1 --identity localhost=server.pem,server.key "
          "--client-ca demo-ca.pem build/guests/https-server.wasm 127.0.0.1:0 --requests 1 "
          "--client-auth request")
    guest = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert guest.stdout is not None  # opened with stdout=PIPE
    try:
        banner = guest.stdout.readline().strip()
        print(f"guest: {banner}")
        port = int(banner.rsplit(":", 1)[1])
        client = ssl.create_default_context()
        ca.configure_trust(client)
        client_leaf = ca.issue_cert("demo-client@example.com")
        client_leaf.configure_cert(client)
        sent = hashlib.sha256(ssl.PEM_cert_to_DER_cert(
            client_leaf.cert_chain_pems[0].bytes().decode())).hexdigest()
        client.set_alpn_protocols(["h2", "http/1.1"])
        with socket.create_connection(("127.0.0.1", port)) as raw, \
                client.wrap_socket(raw, server_hostname="localhost") as conn:
            conn.sendall(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            response = b"".join(iter(lambda: conn.recv(65536), b""))
            cipher, server_cert = conn.cipher(), conn.getpeercert()
            assert cipher is not None and server_cert is not None  # the handshake is done
            # typeshed gives every field of a peer certificate the same union type.
            alt_names = cast(tuple[tuple[str, str], ...], server_cert["subjectAltName"])
            print(f"client saw: server name localhost, alpn {conn.selected_alpn_protocol()}, "
                  f"{conn.version()}, {cipher[0]}, server certificate for "
                  f"{dict(alt_names)['DNS']}; "
                  f"it sent its certificate sha256:{sent}")
        print("guest saw (its answer):")
        for line in response.partition(b"\r\n\r\n")[2].decode().splitlines():
            print(f"  {line}")
        status = guest.wait(timeout=60)
        print(f"guest log: {guest.stdout.read().strip()}")
    finally:
        if guest.poll() is None:  # the demo failed half-way: do not leave it listening
            guest.kill()
            guest.wait()
    print(f"guest exited with status {status}")
    return status


def main() -> int:
    missing = [path for path in (GUEST, SERVER_GUEST) if not path.exists()]
    if missing:
        print(f"{missing[0]} is missing; run `make demo` (it builds the guests).",
              file=sys.stderr)
        return 2
    ca = trustme.CA()
    with tempfile.TemporaryDirectory() as scratch:
        ca_file = Path(scratch) / "demo-ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        status = client_half(ca, ca_file)
        return status or server_half(ca, ca_file)


if __name__ == "__main__":
    sys.exit(main())
