"""A small HTTP/1.1 client on h11, over wasi:tls (https://, see tls.py) or
plain wasi:sockets TCP (http://).

    resp = http.get("https://example.com/")
    resp.status, resp.reason, resp.http_version, resp.headers, resp.body

    with http.request_stream("GET", url) as resp:   # large bodies
        for chunk in resp:
            ...

    http.get("https://example.com/big.iso", to="/data/big.iso")   # to a file

One request per connection: every request carries ``Host``,
``User-Agent: wasi-tls-host-guest`` and ``Connection: close`` (caller headers
of the same name replace these).  Bodies framed by Content-Length, chunked
transfer coding, or the end of the connection (HTTP/1.0 servers) are all
read; a connection-delimited body over TLS must end with the server's
close_notify, otherwise the truncation is reported as TlsError.  Redirects are
returned as they are, never followed.

A body saved to a file (``get(url, to=path)``, ``StreamingResponse.save``)
moves from the connection to the file inside the host when it is framed by
Content-Length or by the end of the connection (wasi:io splice, see
`bulk.forward`): the guest never holds it. A chunked body goes through h11.

Errors: HttpError (bad URL, HTTP protocol problem reported by h11; str() is
the problem), NetError (TCP), TlsError (TLS), StreamFailed (plain TCP
stream), FsError (the file).  h11 is bundled into the component from the
build's site-packages.
"""

from urllib.parse import urlsplit

import h11
from componentize_py_types import Err

from . import bulk, close, fs, net, tls
from . import io as _io
from .errors import StreamClosed, StreamFailed
from .io import READ_CHUNK

USER_AGENT = "wasi-tls-host-guest"
DEFAULT_PORTS = {"http": 80, "https": 443}


class HttpError(Exception):
    """An HTTP-level problem; str() is the description (apps print
    ``error: http: <description>``)."""


class Response:
    """A complete response: status (int), reason (str), http_version ("1.1"),
    headers (list of (name, value) str pairs, names lower-case as h11 gives
    them) and body (bytes)."""

    def __init__(self, status, reason, http_version, headers, body=b""):
        self.status = status
        self.reason = reason
        self.http_version = http_version
        self.headers = headers
        self.body = body

    def header(self, name, default=None):
        """First value of header ``name`` (case-insensitive), or default."""
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return default

    @property
    def status_line(self):
        line = f"HTTP/{self.http_version} {self.status}"
        return f"{line} {self.reason}" if self.reason else line

    def __repr__(self):
        return f"<Response {self.status_line!r} {len(self.body)} bytes>"


class StreamingResponse(Response):
    """A response whose body is read on demand: iterate it (or call
    ``chunks()``) to get the body in pieces as they arrive.  Close it (or use
    ``with``) to release the connection; it is also closed once the body has
    been read to the end or a read fails."""

    def __init__(self, status, reason, http_version, headers, conn, h11conn):
        super().__init__(status, reason, http_version, headers, b"")
        self._conn = conn
        self._h11 = h11conn
        self.complete = False

    def chunks(self):
        try:
            while not self.complete:
                event = _next_event(self._h11, self._conn)
                if isinstance(event, h11.Data):
                    if event.data:
                        yield bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    self.complete = True
                elif isinstance(event, h11.ConnectionClosed):
                    raise HttpError("connection closed before the end of the body")
                else:
                    raise HttpError(f"unexpected event {type(event).__name__}")
        finally:
            self.close()

    __iter__ = chunks

    def read(self) -> bytes:
        """The rest of the body, as one bytes object."""
        return b"".join(self.chunks())

    def save(self, path) -> int:
        """Write the rest of the body into the file ``path`` (under a
        preopened directory; created or truncated) and close the response;
        return the number of bytes written."""
        directory, name = fs.locate(path)
        try:
            descriptor = fs.open_file(directory, name, create=True, truncate=True, write=True)
            try:
                output = fs.call(descriptor.write_via_stream, 0, what=path)
                try:
                    size = self._save_to(output)
                    _io.flush(output)
                    return size
                finally:
                    close(output)
            finally:
                close(descriptor)
        finally:
            close(directory)
            self.close()

    def _save_to(self, output):
        length = self._body_length()
        if length == "chunked":
            written = 0
            for chunk in self.chunks():
                _io.write_all(output, chunk, flush_after=False)
                written += len(chunk)
            return written
        # What h11 holds past the head starts the body; the rest is still in
        # the connection, and goes to the file without passing through here.
        buffered = self._h11.trailing_data[0]
        first = buffered if length is None else buffered[:length]
        _io.write_all(output, first, flush_after=False)
        rest = None if length is None else length - len(first)
        try:
            moved = bulk.forward(self._conn.input, output, rest)
        except Err as error:
            raise self._forward_failure(error, output) from None
        if rest is not None and moved < rest:
            raise HttpError("connection closed before the end of the body")
        self.complete = True
        return len(first) + moved

    def _forward_failure(self, error, output):
        """The exception for a failed forward: the file's if it is the file
        that failed (it fails its check-write too), else the connection's."""
        try:
            _io.check_write(output)
        except (StreamClosed, StreamFailed) as file_failure:
            return fs.FsError("io", f"writing the body: {file_failure.detail or 'closed'}")
        failure = _io.stream_error(error)
        if isinstance(self._conn, tls.TlsConnection):
            return tls.TlsError(failure.detail or "the connection closed")
        return failure

    def _body_length(self):
        """How the body ends: "chunked" (h11 decodes it), its Content-Length,
        or None (with the connection)."""
        if self.status in (204, 304):
            return 0
        if self.header("transfer-encoding") is not None:
            return "chunked"
        length = self.header("content-length")
        return int(length) if length is not None else None

    def close(self):
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# ------------------------------------------------------------- transports


class PlainConnection:
    """A TCP connection with the same interface as tls.TlsConnection
    (read, write_all, close)."""

    def __init__(self, host, port):
        self.sock, self.input, self.output = net.connect_host(host, port)

    def read(self, max_bytes=READ_CHUNK) -> bytes:
        data = _io.read_some(self.input, max_bytes)
        return b"" if data is None else data

    def write_all(self, data) -> None:
        _io.write_all(self.output, data)

    def close(self):
        if self.sock is not None:
            net.close_connection(self.sock, self.input, self.output)
            self.sock = self.input = self.output = None


# ------------------------------------------------------------- requests


def parse_url(url):
    """-> (scheme, host, port, target, host_header).  Raises HttpError."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as e:
        raise HttpError(f"bad URL {url!r}: {e}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise HttpError(f"unsupported URL scheme {parts.scheme!r} (use http or https)")
    host = parts.hostname
    if not host:
        raise HttpError(f"bad URL {url!r}: no host")
    if port is None:
        port = DEFAULT_PORTS[scheme]
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == DEFAULT_PORTS[scheme] else f"{shown}:{port}"
    return scheme, host, port, target, host_header


def _encode_headers(method, body, host_header, headers):
    merged = [("Host", host_header), ("User-Agent", USER_AGENT), ("Connection", "close")]
    if body or method.upper() in ("POST", "PUT", "PATCH"):
        merged.append(("Content-Length", str(len(body))))
    items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    given = {k.lower() for k, _ in items}
    merged = [(k, v) for k, v in merged if k.lower() not in given] + items
    return [(k.encode("latin-1"), str(v).encode("latin-1")) for k, v in merged]


def _next_event(h, conn, head=False):
    """The next h11 event, reading from ``conn`` as needed.  ``head``: the
    response head has not arrived yet (for a clearer message when the server
    closes the connection without answering)."""
    eof = False
    while True:
        try:
            event = h.next_event()
        except h11.RemoteProtocolError as e:
            if head and eof:
                raise HttpError(
                    "connection closed before a complete response head arrived"
                ) from None
            raise HttpError(str(e) or type(e).__name__) from None
        if event is not h11.NEED_DATA:
            return event
        data = conn.read(READ_CHUNK)
        eof = not data
        try:
            h.receive_data(data)  # b"" tells h11 the peer closed
        except h11.RemoteProtocolError as e:
            raise HttpError(str(e) or type(e).__name__) from None


def open_connection(scheme, host, port, server_name=None):
    if scheme == "https":
        return tls.connect_tls(host, port, server_name=server_name)
    return PlainConnection(host, port)


def request_stream(method, url, headers=None, body=b"", server_name=None):
    """Send a request and return a StreamingResponse once the response head
    has arrived (1xx responses are skipped).  The body is read as the
    response is iterated."""
    scheme, host, port, target, host_header = parse_url(url)
    body = bytes(body or b"")
    h = h11.Connection(our_role=h11.CLIENT)
    try:
        out = h.send(
            h11.Request(
                method=method.upper(),
                target=target,
                headers=_encode_headers(method, body, host_header, headers),
            )
        )
        if body:
            out += h.send(h11.Data(data=body))
        out += h.send(h11.EndOfMessage())
    except h11.LocalProtocolError as e:
        raise HttpError(f"bad request: {e}") from None

    conn = open_connection(scheme, host, port, server_name)
    try:
        conn.write_all(out)
        while True:
            event = _next_event(h, conn, head=True)
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                break
            if isinstance(event, h11.ConnectionClosed):
                raise HttpError("connection closed before a response arrived")
            raise HttpError(f"unexpected event {type(event).__name__}")
    except BaseException:
        conn.close()
        raise
    return StreamingResponse(
        event.status_code,
        event.reason.decode("latin-1"),
        event.http_version.decode("ascii"),
        [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers],
        conn,
        h,
    )


def request(method, url, headers=None, body=b"", server_name=None) -> Response:
    """Send a request and read the whole response."""
    with request_stream(method, url, headers, body, server_name) as resp:
        data = resp.read()
    return Response(resp.status, resp.reason, resp.http_version, resp.headers, data)


def get(url, headers=None, server_name=None, to=None) -> Response:
    """GET ``url`` and read the whole response. With ``to`` (a file path
    under a preopened directory), the body goes into that file instead and
    the response's ``body`` is b"" (see `StreamingResponse.save`)."""
    if to is None:
        return request("GET", url, headers, server_name=server_name)
    with request_stream("GET", url, headers, server_name=server_name) as resp:
        resp.save(to)
    return Response(resp.status, resp.reason, resp.http_version, resp.headers)


__all__ = [
    "HttpError",
    "PlainConnection",
    "Response",
    "StreamingResponse",
    "get",
    "parse_url",
    "request",
    "request_stream",
]
