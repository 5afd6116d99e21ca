"""TLS for wasi:tls guests: a sans-IO connection core and the host's trust policy.

``core`` wraps ``ssl.SSLObject`` over memory buffers and never touches a
socket or wasmtime; ``policy`` builds the host-owned ``ssl.SSLContext``.
"""

from .core import TLSConnection, TLSError, TLSState
from .policy import TrustPolicy, client_context, server_context

__all__ = [
    "TLSConnection",
    "TLSError",
    "TLSState",
    "TrustPolicy",
    "client_context",
    "server_context",
]
