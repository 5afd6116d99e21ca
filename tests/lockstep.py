"""An in-memory lockstep pump for TLS endpoints (a `TlsCore` or a bare
`SSLObject` wrapper, `PlainSSLPeer`), moving ciphertext between two of them
until neither progresses. Shared by the core's tests."""

from __future__ import annotations

import ctypes
import ssl

from wasi_tls_host.tls import Point, TlsCore, TlsFailure
from wasi_tls_host.tls.records import AlertDescription, alert_record

#: Fatal alerts in plaintext records (TLS 1.2 record version, which TLS 1.3
#: keeps too): what a handshake aborted before encryption started sends, and
#: a server that cannot have a context.
ACCESS_DENIED_ALERT = alert_record(AlertDescription.ACCESS_DENIED)
INTERNAL_ERROR_ALERT = alert_record(AlertDescription.INTERNAL_ERROR)


#: The libssl Python's ssl runs on, for what its API has no call for.
LIBSSL = ctypes.CDLL(ssl._ssl.__file__)
for _name, _arguments in (("SSL_version", [ctypes.c_void_p]),
                          ("SSL_key_update", [ctypes.c_void_p, ctypes.c_int]),
                          ("SSL_renegotiate", [ctypes.c_void_p]),
                          ("SSL_CTX_set_ciphersuites", [ctypes.c_void_p, ctypes.c_char_p])):
    getattr(LIBSSL, _name).argtypes = _arguments
for _name in ("SSL_get_SSL_CTX", "SSL_CTX_get_keylog_callback"):
    getattr(LIBSSL, _name).argtypes = [ctypes.c_void_p]
    getattr(LIBSSL, _name).restype = ctypes.c_void_p


SSL_KEY_UPDATE_REQUESTED = 1


def ssl_pointer(peer: PlainSSLPeer | ssl.SSLSocket, version: int) -> int:
    """OpenSSL's `SSL *` of a peer or a socket: the field after the socket
    weakref in CPython's `_ssl._SSLSocket`."""
    connection = peer.obj if isinstance(peer, PlainSSLPeer) else peer
    pointer = ctypes.c_void_p.from_address(id(connection._sslobj) + 24).value
    assert LIBSSL.SSL_version(pointer) == version  # it is the SSL object
    return pointer


class PlainSSLPeer:
    """The stdlib's own SSLObject, driven directly (no TlsCore), with
    the same duck-typed interface the pump drives."""

    def __init__(self, ctx: ssl.SSLContext, *, server_side: bool, server_hostname=None,
                 session: ssl.SSLSession | None = None):
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.incoming, self.outgoing, server_side=server_side,
                                server_hostname=server_hostname, session=session)

    def handshake(self) -> bool:
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            return False
        return True

    def receive_ciphertext(self, data: bytes) -> None:
        self.incoming.write(data)

    def receive_eof(self) -> None:
        self.incoming.write_eof()

    def ciphertext_to_send(self) -> bytes:
        return self.outgoing.read()

    def read(self, n: int):
        try:
            return self.obj.read(n)
        except ssl.SSLWantReadError:
            return None
        except ssl.SSLZeroReturnError:
            return b""

    def write(self, data: bytes) -> None:
        if data:
            self.obj.write(data)

    def close(self) -> None:
        try:
            self.obj.unwrap()
        except ssl.SSLWantReadError:
            pass


def deliver(dst, data: bytes, chunk_sizes, on_chunk) -> None:
    """Give ``data`` to ``dst`` in pieces (sizes cycle through chunk_sizes)."""
    if not chunk_sizes:
        dst.receive_ciphertext(data)
        on_chunk(dst)
        return
    pos, i = 0, 0
    while pos < len(data):
        size = chunk_sizes[i % len(chunk_sizes)]
        dst.receive_ciphertext(data[pos : pos + size])
        on_chunk(dst)
        pos += size
        i += 1


def lockstep(a, b, *, chunk_sizes=(), max_rounds: int = 10_000) -> dict:
    """Run both handshakes, moving ciphertext until neither side progresses.

    Returns {endpoint: exception or None}; a side that fails keeps its alert
    in the outgoing buffer and the pump still delivers it to the other side.
    """
    done = {a: False, b: False}
    errors = {a: None, b: None}

    def step(conn) -> None:
        if errors[conn] is None and not done[conn]:
            try:
                done[conn] = conn.handshake()
            except (TlsFailure, ssl.SSLError) as exc:
                errors[conn] = exc

    for _ in range(max_rounds):
        step(a)
        step(b)
        moved = False
        for src, dst in ((a, b), (b, a)):
            data = src.ciphertext_to_send()
            if data:
                moved = True
                if errors[dst] is None:
                    deliver(dst, data, chunk_sizes, step)
        if not moved:
            break
    else:  # pragma: no cover
        raise AssertionError("lockstep did not settle")
    return errors


def handshake_ok(a, b, **kw) -> None:
    errors = lockstep(a, b, **kw)
    assert errors == {a: None, b: None}


def flush(src, dst, chunk_sizes=()) -> int:
    """Move everything src has queued to dst; returns the byte count."""
    data = src.ciphertext_to_send()
    if data:
        deliver(dst, data, chunk_sizes, lambda _c: None)
    return len(data)


def read_all(conn, *, want: int | None = None, max_bytes: int = 65536) -> bytes:
    """Read until read() says "nothing more yet" (None) or end of stream."""
    out = bytearray()
    while want is None or len(out) < want:
        chunk = conn.read(max_bytes)
        if not chunk:  # None (need data) or b"" (EOF)
            break
        out += chunk
    return bytes(out)


def send(src, dst, payload: bytes, chunk_sizes=(), max_bytes: int = 65536) -> bytes:
    """Write payload on src, deliver it, return what dst reads."""
    src.write(payload)
    received = bytearray()
    for _ in range(len(payload) + 10):
        moved = flush(src, dst, chunk_sizes)
        received += read_all(dst, max_bytes=max_bytes)
        flush(dst, src)  # e.g. nothing, but keep both directions honest
        if len(received) >= len(payload) and not moved:
            break
    return bytes(received)


def resumed_session(client_context: ssl.SSLContext, server_context: ssl.SSLContext, *,
                    run_until: Point) -> tuple[PlainSSLPeer, TlsCore]:
    """A session made by one full handshake with a server core, then a second
    client resuming it with a core that runs until `run_until`."""
    first = PlainSSLPeer(client_context, server_side=False, server_hostname="localhost")
    full = TlsCore(server_context, server_side=True)
    handshake_ok(first, full)
    full.write(b"x")  # TLS 1.3: the client takes its tickets as it reads
    first.receive_ciphertext(full.ciphertext_to_send())
    assert first.read(1) == b"x"
    peer = PlainSSLPeer(client_context, server_side=False, server_hostname="localhost",
                        session=first.obj.session)
    core = TlsCore(server_context, server_side=True, run_until=run_until)
    assert lockstep(peer, core) == {peer: None, core: None}
    assert peer.obj.session_reused
    return peer, core
