"""wasi:tls client helpers (world ``tls-client``): connect, read, write and
close a TLS connection with blocking-style calls on top of wasi:tls/types.

    conn = tls.connect_tls("example.com", 443)
    conn.write_all(b"...")
    data = conn.read_all()
    conn.close()

The module knows nothing about HTTP.  Failures of the TLS layer (handshake,
certificate verification, truncation, a failed transport under TLS) raise
TlsError whose message is the host's io-error debug string (its first line;
the full string is in ``debug``); TCP connection failures raise NetError
(wasi:sockets error-code names).

In a world without wasi:tls (``plain``) the module still imports, and
connect_tls raises TlsError.

Resource order: the TCP streams are handed to client-handshake (which owns
them from then on); the TLS streams are children of the client-connection,
and the connection's transport belongs to the TCP socket.  close() therefore
drops TLS input, TLS output, the connection, then the socket.
"""

import contextlib

from componentize_py_types import Err, Ok
from wit_world.imports import streams

from . import close as drop_resources
from . import io, net
from .errors import NetError, StreamClosed, UnexpectedEof, WasiError

try:
    from wit_world.imports import wasi_tls_types as tls_types
except ImportError:  # world without wasi:tls
    tls_types = None

READ_CHUNK = 64 * 1024


class TlsError(WasiError):
    """A TLS-level failure.  ``debug`` is the host's io-error debug string
    verbatim; ``message`` (also str()) is its first line -- the whole string
    for this project's host, while wasmtime appends a Rust backtrace."""

    code = "tls"

    def __init__(self, debug):
        self.debug = debug
        lines = debug.strip().splitlines()
        self.message = lines[0].strip() if lines else debug
        super().__init__(detail=self.message)

    def __str__(self):
        return self.message


def _debug_string(error) -> str:
    """io-error -> its debug string (the error resource is dropped)."""
    try:
        return error.to_debug_string()
    finally:
        error.__exit__(None, None, None)


def _stream_exc(err):
    """Err(stream-error) -> None for closed, else TlsError."""
    value = err.value if isinstance(err, Err) else err
    if isinstance(value, streams.StreamError_Closed):
        return None
    if isinstance(value, streams.StreamError_LastOperationFailed):
        return TlsError(_debug_string(value.value))
    return TlsError(repr(value))


def _split_host(host, port):
    """Accept "host", "[v6]", "host:port", "[v6]:port" (when port is None)."""
    if port is None:
        return net.split_host_port(host)
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def _tcp_connect(host, port):
    """Connect to each resolved address in turn -> (sock, inp, out)."""
    last = None
    for ip in net.resolve(host):
        try:
            return net.connect_address(net.socket_address(ip, port))
        except NetError as e:
            last = e
    raise last if last is not None else NetError("name-unresolvable", host)


def handshake(server_name, inp, out):
    """Run a TLS client handshake over the transport streams ``inp``/``out``
    (ownership passes to the host), polling the future's pollable.
    -> (client-connection, tls-input, tls-output).  Raises TlsError."""
    if tls_types is None:
        drop_resources(inp, out)
        raise TlsError("wasi:tls is not available in this world")
    hs = tls_types.ClientHandshake(server_name, inp, out)
    future = tls_types.ClientHandshake.finish(hs)
    try:
        while True:
            result = future.get()
            if result is None:
                io.wait_for(future)
                continue
            break
    finally:
        future.__exit__(None, None, None)
    if isinstance(result, Err):
        raise TlsError("handshake result was already taken")
    inner = result.value if isinstance(result, Ok) else result
    if isinstance(inner, Err):
        raise TlsError(_debug_string(inner.value))
    value = inner.value if isinstance(inner, Ok) else inner
    connection, tin, tout = value
    return connection, tin, tout


def connect_tls(host, port=None, server_name=None):
    """Open a TLS connection.

    ``host`` is a host name or IP literal (an IPv6 literal may be given in
    [brackets], as in URLs) and ``port`` the TCP port; with ``port=None``
    ``host`` is "HOST:PORT".  ``server_name`` (SNI and certificate name)
    defaults to the host.  Every resolved address is tried in order until
    one connects.  Raises NetError (TCP) or TlsError (handshake).
    """
    host, port = _split_host(host, port)
    if server_name is None:
        server_name = host
    if tls_types is None:
        raise TlsError("wasi:tls is not available in this world")
    sock, inp, out = _tcp_connect(host, port)
    try:
        connection, tin, tout = handshake(server_name, inp, out)
    except BaseException:
        sock.__exit__(None, None, None)
        raise
    return TlsConnection(sock, connection, tin, tout)


@contextlib.contextmanager
def _tls_errors():
    """Report wasi_guest.io failures on the TLS streams as TlsError."""
    try:
        yield
    except UnexpectedEof as e:
        raise TlsError(f"end of stream after {len(e.data)} of {e.expected} bytes") from None
    except StreamClosed:
        raise TlsError("connection closed for writing") from None
    except WasiError as e:
        raise TlsError(e.detail or e.code) from None


class TlsConnection:
    """An established TLS client connection (blocking-style API)."""

    def __init__(self, sock, connection, input_stream, output_stream):
        self.sock = sock
        self.connection = connection
        self.input = input_stream
        self.output = output_stream
        self.eof = False  # the peer's close_notify has been read
        self.output_closed = False  # close_notify requested
        self.closed = False

    # ------------------------------------------------------------ reading

    def try_read(self, max_bytes=READ_CHUNK):
        """Non-blocking read: bytes (possibly b"" if nothing is available
        yet), or None at clean end of stream.  Raises TlsError."""
        if self.eof:
            return None
        try:
            return self.input.read(max_bytes)
        except Err as e:
            exc = _stream_exc(e)
            if exc is None:
                self.eof = True
                return None
            raise exc from None

    def read(self, max_bytes=READ_CHUNK) -> bytes:
        """At least one byte (at most ``max_bytes``), waiting as needed;
        b"" at clean end of stream (the peer's close_notify)."""
        while True:
            data = self.try_read(max_bytes)
            if data is None:
                return b""
            if data:
                return data
            io.wait_for(self.input)

    def read_all(self, limit=None) -> bytes:
        """Read until clean end of stream.  With ``limit``, raise TlsError
        once more than ``limit`` bytes have arrived."""
        buf = bytearray()
        while True:
            data = self.read(READ_CHUNK)
            if not data:
                return bytes(buf)
            buf += data
            if limit is not None and len(buf) > limit:
                raise TlsError(f"more than {limit} bytes")

    def read_exactly(self, n) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            data = self.read(min(READ_CHUNK, n - len(buf)))
            if not data:
                raise TlsError(f"end of stream after {len(buf)} of {n} bytes")
            buf += data
        return bytes(buf)

    # ------------------------------------------------------------ writing

    def flush(self) -> None:
        """Flush and wait until the flush completes."""
        with _tls_errors():
            io.flush(self.output)

    def write_all(self, data, flush=True) -> None:
        """Write all of ``data`` (honouring check-write), then flush and wait
        for the flush to complete."""
        with _tls_errors():
            io.write_all(self.output, data, flush)

    def duplex(self, data, expect) -> bytes:
        """Write ``data`` while reading ``expect`` bytes back, with one poll
        per iteration (no deadlock with a peer that answers while we are
        still sending).  Raises TlsError, also if the input ends first."""
        with _tls_errors():
            return io.duplex(self.input, self.output, data, expect)

    # ------------------------------------------------------------ closing

    def close_output(self) -> None:
        """Send close_notify (once).  Reading stays possible until the
        peer's own close_notify (read() -> b"")."""
        if not self.output_closed and not self.closed:
            self.output_closed = True
            self.connection.close_output()

    def close(self) -> None:
        """close_notify (if not sent yet), then drop the TLS streams, the
        connection (which closes the TCP streams) and the socket.
        Idempotent; never raises for the goodbye itself."""
        if self.closed:
            return
        self.close_output()
        self.closed = True
        drop_resources(self.input, self.output, self.connection, self.sock)
        self.input = self.output = self.connection = self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


__all__ = ["TlsConnection", "TlsError", "connect_tls", "handshake"]
