"""`make demo`: a guest fetches a page over HTTPS through the host.

Starts a local HTTPS server on loopback with a throwaway CA made by trustme,
runs the bundled `https-get` guest with `wasi-tls-host run --ca-file CA
--allow-net localhost:PORT`, shows what the guest printed, and shuts down.
"""

from __future__ import annotations

import http.server
import ssl
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import trustme

from .command_line import installed_command

ROOT = Path(__file__).resolve().parents[2]
GUEST = ROOT / "build" / "guests" / "https-get.wasm"
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


def main() -> int:
    if not GUEST.exists():
        print(f"{GUEST} is missing; run `make demo` (it builds the guests).", file=sys.stderr)
        return 2
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_context)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with tempfile.TemporaryDirectory() as scratch:
        ca_file = Path(scratch) / "demo-ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        url = f"https://localhost:{port}/hello"
        command = [installed_command(), "run",
                   "--ca-file", str(ca_file), "--allow-net", f"localhost:{port}",
                   str(GUEST), "--print-body", url]
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


if __name__ == "__main__":
    sys.exit(main())
