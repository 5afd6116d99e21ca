"""TLS clients and servers for guests, with blocking-style calls and tasks.

    conn = tls.connect_tls("example.com", 443)            # upstream wasi:tls client
    conn = tls.connect_tls("example.com", 443, alpn=["h2", "http/1.1"],
                           identity=tls.preopened_identity("client"),
                           verify=lambda chain: True)      # the full draft client
    conn.write_all(b"..."); data = conn.read_all(); conn.close()

    conn = tls.accept_tls(tcp_connection, identities=[...])   # a server connection

Two interfaces sit underneath. The upstream ``wasi:tls/types`` client (world
``tls-client``) is used when no option of the full draft is asked for, so such
a guest runs on any wasi:tls host. ALPN, a client identity, a verify hook and
every server need ``wasi-tls-host:tls/tls`` (worlds ``tls-full-client`` and
``tls-server``). In a world without them the module still imports, and those
calls raise TlsError.

Each blocking call has a task namesake (``connect_task``, ``accept_task``,
``TlsConnection.read_task``...) for `tasks`: a server runs every connection's
handshake and traffic through one poll.

Failures of the TLS layer raise TlsError. Its message is the host's reason:
the io-error debug string of the upstream client and of the plaintext
streams, and for a failed step of the draft (whose futures say only that it
failed) the connection's ``failure-reason``, which wasi-tls-host:tls adds.
TCP failures raise NetError.

Resource order: the transport streams are handed to the TLS connection
(which owns them from then on); the TLS streams are children of the
connection; the TCP socket goes last. close() drops them in that order.
"""

import hashlib

from componentize_py_types import Err, Ok
from wit_world.imports import streams

from . import bulk, close, io, net, tasks
from .errors import StreamClosed, UnexpectedEof, WasiError
from .io import READ_CHUNK

try:
    from wit_world.imports import wasi_tls_types as tls_types
except ImportError:  # a world without the upstream client
    tls_types = None
try:
    from wit_world.imports import tls as draft
    from wit_world.imports import wasi_tls_host_tls_preopens as draft_preopens
except ImportError:  # a world without the full draft
    draft = draft_preopens = None

PROTOCOL_NAMES = {0x0303: "TLSv1.2", 0x0304: "TLSv1.3"}
#: How long a server connection may go without data before its reads fail
#: with Timeout, unless accept_task is given another ``idle_timeout``.
IDLE_TIMEOUT_S = 30


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


def _need_draft(what):
    if draft is None:
        raise TlsError(f"{what} needs wasi-tls-host:tls/tls (world tls-full-client or "
                       "tls-server)")


def _debug_string(error) -> str:
    """io-error -> its debug string (the error resource is dropped)."""
    try:
        return error.to_debug_string()
    finally:
        close(error)


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


def _outcome_task(future, answer_pending=False):
    """Task: what ``get`` returns once the future is ready; the future is
    dropped. ``answer_pending``: the future waits for the peer's answer to
    bytes that have only just left (a client's first flight), so it is
    waited on before the first ``get``, which would find it pending."""
    try:
        if answer_pending:
            yield future
        while (result := future.get()) is None:
            yield future
    finally:
        close(future)
    return result


def _settled_task(future, what, connection, answer_pending=False):
    """Task: the value of a draft future (``future<T>``) of ``connection``;
    the future is dropped. A failed step raises TlsError with the reason the
    connection gives ("<what> failed" if it gives none)."""
    result = yield from _outcome_task(future, answer_pending)
    inner = result.value if isinstance(result, Ok) else result
    if isinstance(result, Err) or isinstance(inner, Err):
        raise TlsError(connection.failure_reason() or f"{what} failed")
    return inner.value if isinstance(inner, Ok) else inner


def _draft_call(call, what):
    try:
        return call()
    except Err:
        raise TlsError(f"{what} was refused") from None


# ---------------------------------------------------------------- identities


def preopened_identities():
    """The identities the operator provisioned (``--identity NAME=...``):
    {name: private-identity}. Their keys never enter the guest."""
    _need_draft("a provisioned identity")
    return {name: identity for identity, name in draft_preopens.get_identities()}


def preopened_identity(name=None):
    """The provisioned identity called ``name``, or the first one."""
    identities = preopened_identities()
    if not identities:
        raise TlsError("no identity was provisioned: run with --identity NAME=CERT,KEY")
    if name is None:
        return next(iter(identities.values()))
    if name not in identities:
        raise TlsError(f"no identity named {name!r} was provisioned "
                       f"(have: {', '.join(sorted(identities))})")
    return identities[name]


def parse_identity(private_key, chain):
    """A private-identity from a key (PEM or DER) and a chain (a list of
    certificates, leaf first, or one PEM bundle as bytes)."""
    _need_draft("a parsed identity")
    if isinstance(chain, (bytes, bytearray)):
        chain = [bytes(chain)]
    return _draft_call(lambda: draft.PrivateIdentity.parse(bytes(private_key), list(chain)),
                       "parsing the identity")


def _export_chain(public_identity):
    try:
        return public_identity.export_x509_chain()
    finally:
        close(public_identity)


def fingerprint(chain):
    """The leaf of ``chain`` (DER certificates, leaf first) as "sha256:<hex>";
    "none" without a chain."""
    return f"sha256:{hashlib.sha256(chain[0]).hexdigest()}" if chain else "none"


def negotiated(details):
    """The version and cipher suite of `TlsConnection.details` as (name, value)
    pairs, as the bundled apps report them: ("protocol", "TLSv1.3"),
    ("cipher suite", "0x1302")."""
    return [("protocol", details["protocol"]),
            ("cipher suite", f"0x{details['cipher_suite']:04x}")]


# ---------------------------------------------------------------- clients


def handshake(server_name, inp, out):
    """Upstream wasi:tls client handshake over ``inp``/``out`` (ownership
    passes to the host) -> (client-connection, tls-input, tls-output)."""
    return tasks.run(_upstream_handshake_task(server_name, inp, out))


def _upstream_handshake_task(server_name, inp, out):
    if tls_types is None:
        close(inp, out)
        raise TlsError("wasi:tls is not available in this world")
    hs = tls_types.ClientHandshake(server_name, inp, out)
    result = yield from _outcome_task(tls_types.ClientHandshake.finish(hs),
                                      answer_pending=True)
    if isinstance(result, Err):
        raise TlsError("handshake result was already taken")
    inner = result.value if isinstance(result, Ok) else result
    if isinstance(inner, Err):
        raise TlsError(_debug_string(inner.value))
    value = inner.value if isinstance(inner, Ok) else inner
    return value


class _Handshake:
    """A draft handshake resource until `finish` or `abort` consumes it;
    dropped first if a step fails, so its connection can be dropped after."""

    def __init__(self, resource):
        self.resource = resource

    def take(self):
        resource, self.resource = self.resource, None
        return resource

    def configure_alpn(self, alpn):
        """Offer (client) or accept (server) the ALPN ids, if there are any."""
        if alpn:
            _draft_call(lambda: self.resource.configure_alpn_ids([p.encode() for p in alpn]),
                        "configuring ALPN")

    def abort_task(self, kind):
        """Task: send the fatal alert and wait until it has left."""
        alert_sent = kind.abort(self.take())
        try:
            yield alert_sent
        finally:
            close(alert_sent)

    def drop(self):
        if self.resource is not None:
            close(self.take())


def _draft_client_task(server_name, inp, out, alpn, identity, verify):
    """Full-draft client handshake -> (client-connection, tls-input, tls-output)."""
    connection = draft.ClientConnection(inp, out)
    hs = _Handshake(None)
    try:
        hs.resource = _draft_call(lambda: connection.connect(server_name),
                                  f"connecting to the server name {server_name!r}")
        hs.configure_alpn(alpn)
        if verify is not None:
            public = yield from _settled_task(hs.resource.verify_server_identity(),
                                              "verifying the server's certificate", connection)
            if not verify(_export_chain(public)):
                yield from hs.abort_task(draft.ClientHandshake)
                raise TlsError("the verify hook rejected the server's certificate")
        if identity is not None:
            request = yield from _settled_task(hs.resource.receive_client_identity_request(),
                                               "waiting for a certificate request", connection)
            if request is not None:
                draft.ClientIdentityRequest.respond(request, [identity])
        # Without a step before it, the finish waits for the server's first flight.
        tin, tout = yield from _settled_task(draft.ClientHandshake.finish(hs.take()),
                                             "the TLS handshake", connection,
                                             answer_pending=verify is None and identity is None)
    except BaseException:
        hs.drop()
        close(connection)
        raise
    return connection, tin, tout


def connect_task(host, port=None, server_name=None, *, alpn=(), identity=None, verify=None):
    """Task: open a TLS connection.

    ``host`` is a host name or IP literal (an IPv6 literal may be given in
    [brackets], as in URLs) and ``port`` the TCP port; with ``port=None``
    ``host`` is "HOST:PORT".  ``server_name`` (SNI and certificate name)
    defaults to the host.  Every resolved address is tried in order until
    one connects.  With ``alpn`` (ids, most preferred first), ``identity``
    (a private-identity for a server that asks for one) or ``verify`` (a
    check of the server's chain, a list of DER certificates, leaf first,
    run after the host's own verification; False aborts), the full draft
    client is used.  Raises NetError (TCP) or TlsError (handshake).
    """
    host, port = _split_host(host, port)
    if server_name is None:
        server_name = host
    full = bool(alpn) or identity is not None or verify is not None
    if full:
        _need_draft("ALPN, a client identity or a verify hook")
    elif tls_types is None:
        raise TlsError("wasi:tls is not available in this world")
    sock, inp, out = net.connect_host(host, port)
    try:
        if full:
            parts = yield from _draft_client_task(server_name, inp, out, alpn, identity, verify)
        else:
            parts = yield from _upstream_handshake_task(server_name, inp, out)
    except BaseException:
        close(sock)
        raise
    return TlsConnection(sock, *parts, full=full)


def connect_tls(host, port=None, server_name=None, *, alpn=(), identity=None, verify=None):
    return tasks.run(connect_task(host, port, server_name, alpn=alpn, identity=identity,
                                  verify=verify))


# ---------------------------------------------------------------- servers


class ClientHello:
    """What a client offered: ``server_name`` (or None), ``alpn_ids`` (str)
    and ``cipher_suites`` (IANA codes), exactly as it sent them."""

    def __init__(self, hello):
        self.server_name = hello.server_name()
        self.alpn_ids = [bytes(i).decode("latin-1") for i in hello.alpn_ids()]
        self.cipher_suites = list(hello.cipher_suites())


def accept_task(tcp, identities, *, alpn=(), choose=None, client_auth=None,
                idle_timeout=IDLE_TIMEOUT_S):
    """Task: the server side of a TLS connection on an accepted TCP
    connection ``tcp`` = (socket, input, output) -> TlsConnection, whose
    reads fail with Timeout after ``idle_timeout`` seconds without data
    (None: never).

    ``identities`` (private-identity resources, most preferred first) and
    ``alpn`` (ids the server accepts, most preferred first) may be decided
    per client: ``choose(hello, identities, alpn)`` sees the ClientHello
    before anything is sent and returns the ``(identities, alpn)`` to use.
    ``client_auth`` is None, "request" or "require": ask for a client
    certificate (verified by the host against its client CAs); "require"
    aborts the handshake when the client sends none.
    """
    _need_draft("a TLS server")
    sock, inp, out = tcp
    connection = draft.ServerConnection(inp, out)
    hs = _Handshake(None)
    try:
        hs.resource = _draft_call(connection.accept, "accepting")
        if choose is not None:
            hello = yield from _settled_task(hs.resource.receive_client_hello(),
                                             "reading the ClientHello", connection)
            try:
                identities, alpn = choose(ClientHello(hello), identities, alpn)
            finally:
                close(hello)
        _draft_call(lambda: hs.resource.configure_server_identities(list(identities)),
                    "configuring the server identities")
        hs.configure_alpn(alpn)
        if client_auth is not None:
            public = yield from _settled_task(hs.resource.request_client_identity(),
                                              "asking for a client certificate", connection)
            if public is not None:
                close(public)  # the connection reports it too
            elif client_auth == "require":
                yield from hs.abort_task(draft.ServerHandshake)
                raise TlsError("the client sent no certificate")
        tin, tout = yield from _settled_task(draft.ServerHandshake.finish(hs.take()),
                                             "the TLS handshake", connection)
    except BaseException:
        hs.drop()
        close(connection)
        close(sock)
        raise
    return TlsConnection(sock, connection, tin, tout, full=True, idle_timeout=idle_timeout)


def accept_tls(tcp, identities, *, alpn=(), choose=None, client_auth=None,
               idle_timeout=IDLE_TIMEOUT_S):
    return tasks.run(accept_task(tcp, identities, alpn=alpn, choose=choose,
                                 client_auth=client_auth, idle_timeout=idle_timeout))


# ---------------------------------------------------------------- connections


class _TlsErrors:
    """Report wasi_guest.io failures on the TLS streams as TlsError."""

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if isinstance(error, UnexpectedEof):
            raise TlsError(f"end of stream after {len(error.data)} of {error.expected} "
                           "bytes") from None
        if isinstance(error, StreamClosed):
            raise TlsError("connection closed for writing") from None
        if isinstance(error, WasiError) and not isinstance(error, TlsError):
            raise TlsError(error.detail or error.code) from None
        return False


class TlsConnection:
    """An established TLS connection, client or server. With
    ``idle_timeout`` (seconds), a read that gets no data for that long fails
    with Timeout."""

    def __init__(self, sock, connection, input_stream, output_stream, full=False,
                 idle_timeout=None):
        self.sock = sock
        self.connection = connection
        self.input = input_stream
        self.output = output_stream
        self.full = full  # a wasi-tls-host:tls connection (it reports details)
        self.idle_timeout = idle_timeout
        self.eof = False  # the peer's close_notify has been read
        self.output_closed = False  # close_notify requested
        self.closed = False

    # ------------------------------------------------------------ reading

    def try_read(self, max_bytes=READ_CHUNK):
        """Non-blocking read: bytes (possibly b"" if nothing is available
        yet), or None at clean end of stream.  Raises TlsError."""
        return self._read(bulk.read, max_bytes)

    def _read(self, read, max_bytes):
        """One read with ``read`` (`bulk.read` or `bulk.blocking_read`):
        bytes, or None at clean end of stream."""
        if self.eof:
            return None
        try:
            return read(self.input, max_bytes)
        except Err as e:
            exc = _stream_exc(e)
            if exc is None:
                self.eof = True
                return None
            raise exc from None

    def read_task(self, max_bytes=READ_CHUNK, deadline=None):
        """Task: at least one byte (at most ``max_bytes``); b"" at clean end
        of stream (the peer's close_notify). Timeout if none has come by
        ``deadline`` (from `tasks.deadline_in`) or, without one, within the
        connection's idle_timeout."""
        what = "waiting for data"
        if deadline is None and self.idle_timeout is not None:
            deadline = tasks.deadline_in(self.idle_timeout)
            what = f"no data for {self.idle_timeout:g} s"
        data = yield from io.read_task(lambda: self.try_read(max_bytes), self.input, deadline,
                                       what)
        return b"" if data is None else data

    def read(self, max_bytes=READ_CHUNK, deadline=None) -> bytes:
        if deadline is None and self.idle_timeout is None:
            # Nothing to time: the host waits, one call per chunk.
            data = self._read(bulk.blocking_read, max_bytes)
            return b"" if data is None else data
        return tasks.run(self.read_task(max_bytes, deadline))

    def read_all(self, limit=None) -> bytes:
        """Read until clean end of stream.  With ``limit``, raise TlsError
        once more than ``limit`` bytes have arrived."""
        return io.join_chunks(lambda: self.read(READ_CHUNK), limit,
                              lambda: TlsError(f"more than {limit} bytes"))

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
        with _TlsErrors():
            io.flush(self.output)

    def write_all_task(self, data, flush=True):
        """Task: write all of ``data`` (honouring check-write), then flush."""
        with _TlsErrors():
            yield from io.write_all_task(self.output, data, flush)

    def write_all(self, data, flush=True) -> None:
        tasks.run(self.write_all_task(data, flush))

    def duplex(self, data, expect) -> bytes:
        """Write ``data`` while reading ``expect`` bytes back, with one poll
        per iteration (no deadlock with a peer that answers while we are
        still sending).  Raises TlsError, also if the input ends first."""
        with _TlsErrors():
            return io.duplex(self.input, self.output, data, expect)

    # ------------------------------------------------------------ details

    def details(self):
        """What the handshake settled (full-draft connections): a dict with
        server_name, alpn (str or None), protocol ("TLSv1.3"), cipher_suite
        (IANA code), peer_chain and own_chain (the certificates the peer and
        this side sent: DER, leaf first, or None)."""
        if not self.full:
            return {}
        c = self.connection
        alpn = c.alpn_id()
        client = isinstance(c, draft.ClientConnection)
        peer = c.server_identity() if client else c.client_identity()
        own = c.client_identity() if client else c.server_identity()
        own_chain = None
        if own is not None:
            own_chain = _export_chain(own.public_identity())
            close(own)
        return {
            "server_name": c.server_name(),
            "alpn": bytes(alpn).decode("latin-1") if alpn is not None else None,
            "protocol": PROTOCOL_NAMES.get(c.protocol_version()),
            "cipher_suite": c.cipher_suite(),
            "peer_chain": _export_chain(peer) if peer is not None else None,
            "own_chain": own_chain,
        }

    def request_client_certificate_task(self):
        """Task, server side, TLS 1.3: ask the client for a certificate after
        the handshake (post-handshake authentication). Returns its chain (DER,
        leaf first) or None; TlsError if the connection cannot ask (TLS 1.2,
        or a client that did not offer it)."""
        future = _draft_call(self.connection.request_client_identity,
                             "asking for a client certificate after the handshake")
        public = yield from _settled_task(future, "post-handshake authentication",
                                          self.connection)
        return _export_chain(public) if public is not None else None

    # ------------------------------------------------------------ closing

    def close_output(self) -> None:
        """Send close_notify (once).  Reading stays possible until the
        peer's own close_notify (read() -> b"").  The full draft has no
        call for it: dropping the output stream sends close_notify."""
        if self.output_closed or self.closed:
            return
        self.output_closed = True
        if self.full:
            close(self.output)
            self.output = None
        else:
            self.connection.close_output()

    def close(self) -> None:
        """close_notify (if not sent yet), then drop the TLS streams, the
        connection (which closes the transport streams) and the socket.
        Idempotent; never raises for the goodbye itself."""
        if self.closed:
            return
        self.close_output()
        self.closed = True
        close(self.input, self.output, self.connection, self.sock)
        self.input = self.output = self.connection = self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


__all__ = [
    "IDLE_TIMEOUT_S",
    "ClientHello",
    "TlsConnection",
    "TlsError",
    "accept_task",
    "accept_tls",
    "connect_task",
    "connect_tls",
    "fingerprint",
    "handshake",
    "negotiated",
    "parse_identity",
    "preopened_identities",
    "preopened_identity",
]
