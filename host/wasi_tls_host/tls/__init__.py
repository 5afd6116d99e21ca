"""TLS for wasi:tls guests: a sans-IO connection core and the host's TLS policy.

``core`` wraps ``ssl.SSLObject`` over memory buffers, for clients and servers
alike, and never touches a socket or wasmtime; ``policy`` builds the
host-owned ``ssl.SSLContext``s; ``identity`` holds certificates and keys;
``client_hello`` and ``records`` read the wire format the core needs to see.
"""

from .core import Point, TLSConnection, TLSState
from .errors import ErrorKind, TLSError
from .identity import IdentityError, PrivateIdentity, PublicIdentity
from .policy import ClientAuth, TlsPolicy

__all__ = [
    "ClientAuth",
    "ErrorKind",
    "IdentityError",
    "Point",
    "PrivateIdentity",
    "PublicIdentity",
    "TLSConnection",
    "TLSError",
    "TLSState",
    "TlsPolicy",
]
