"""Python peers on loopback for the network figures, one thread per
connection, in the bench's process (the clients under test run in their own
processes):

* `source`: sends `payload` bytes (zeros, or a block of its own over and
  over), then closes (TLS: close_notify, then it
  waits for the client's);
* `sink`: reads until the client is done (TCP: end of stream; TLS: its
  close_notify), then closes (TLS: answers with its own close_notify);
* `idle` (TLS): completes the handshake and waits for the client to close;
* `greet` (TLS): sends one byte, R when the handshake resumed a session and
  F when it was a full one, then waits for the client to close.

`Credentials` is a throwaway CA (trustme) and a certificate for localhost
and 127.0.0.1, with the CA written to a file for the clients.
"""

from __future__ import annotations

import socket
import ssl
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import trustme

CHUNK = 64 * 1024


class Credentials:
    def __init__(self) -> None:
        self.ca = trustme.CA()
        self.certificate = self.ca.issue_cert("localhost", "127.0.0.1")
        self._directory = tempfile.TemporaryDirectory(prefix="wasi-tls-bench-")
        directory = Path(self._directory.name)
        self.ca_file = directory / "ca.pem"
        self.cert_file = directory / "cert.pem"
        self.key_file = directory / "key.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.certificate.private_key_pem.write_to_path(str(self.key_file))
        with open(self.cert_file, "wb") as chain:
            for blob in self.certificate.cert_chain_pems:
                chain.write(blob.bytes())

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.certificate.configure_cert(context)
        return context

    def close(self) -> None:
        self._directory.cleanup()


Handler = Callable[[socket.socket], None]


class Peer:
    """A listener on 127.0.0.1 serving each connection with `handler` in its
    own thread (after the TLS handshake when `context` is given)."""

    def __init__(self, handler: Handler, context: ssl.SSLContext | None = None):
        self.handler = handler
        self.context = context
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.port = self.listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.context is not None:
                conn = self.context.wrap_socket(conn, server_side=True)
            self.handler(conn)
        except (OSError, ssl.SSLError):
            pass  # a client that went away early is the client's figure to report
        finally:
            conn.close()

    def close(self) -> None:
        self.listener.close()


def source(payload: int, block: bytes = bytes(CHUNK)) -> Handler:
    """Send `payload` bytes, `block` (64 KiB) over and over."""
    def send(conn: socket.socket) -> None:
        remaining = payload
        while remaining:
            size = min(CHUNK, remaining)
            conn.sendall(block[:size])
            remaining -= size
        if isinstance(conn, ssl.SSLSocket):
            conn.unwrap()
    return send


def sink(conn: socket.socket) -> None:
    buffer = bytearray(CHUNK)
    while conn.recv_into(buffer):
        pass
    if isinstance(conn, ssl.SSLSocket):
        conn.unwrap()


def idle(conn: socket.socket) -> None:
    while conn.recv(CHUNK):
        pass


def greet(conn: socket.socket) -> None:
    assert isinstance(conn, ssl.SSLSocket)
    conn.sendall(b"R" if conn.session_reused else b"F")
    idle(conn)
