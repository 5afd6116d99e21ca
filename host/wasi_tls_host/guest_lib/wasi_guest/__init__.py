"""wasi_guest: a small pure-Python helper library for WASI 0.2 guests built
with componentize-py.

Modules:
  errors  -- exception types carrying WASI error-code names
  io      -- wasi:io stream helpers (read_exactly, read_all, write_all, wait)
  bulk    -- stream bytes past the list<u8> wall where the host offers it
             (wasi-tls-host:io/bulk), the stream methods otherwise; io, tls
             and http move their bytes through it; forward (stream to stream
             inside the host)
  net     -- wasi:sockets TCP helpers (parse_address, connect_tcp, listen_tcp)
  fs      -- wasi:filesystem helpers (preopens, whole-file read/write)
  cli     -- process exit helper
  tasks   -- cooperative tasks: many connections waiting in one poll
  tls     -- TLS clients (connect_tls: the upstream wasi:tls client, or the
             full draft for ALPN, client identities and a verify hook) and
             servers (accept_tls), provisioned identities; worlds tls-client,
             tls-full-client, tls-server (imports in plain too, and fails there)
  http    -- HTTP/1.1 client on h11 over tls / TCP (get, request,
             request_stream, Response, HttpError); needs h11 bundled

componentize-py snapshots the guest after importing it at build time, and
modules that were not imported then are NOT available at run time.  Every
module here therefore imports what it needs at top level, and apps must import
the submodules they use at top level too (``from wasi_guest import io, net``),
never inside a function.

Resources (streams, sockets, pollables) are dropped with ``close(...)`` in the
order given; children (pollables, streams) must go before their parents
(streams, sockets), or the host traps.
"""

from .errors import (  # noqa: F401
    FsError,
    NetError,
    StreamClosed,
    StreamFailed,
    Timeout,
    UnexpectedEof,
    WasiError,
    code_name,
)


def close(*resources):
    """Drop WASI resources now, in the given order (None entries are skipped).

    Pass children before parents: pollables, then streams, then sockets.
    """
    for r in resources:
        if r is not None:
            r.__exit__(None, None, None)


__all__ = [
    "FsError",
    "NetError",
    "StreamClosed",
    "StreamFailed",
    "Timeout",
    "UnexpectedEof",
    "WasiError",
    "close",
    "code_name",
]
