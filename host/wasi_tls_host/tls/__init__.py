"""TLS for wasi:tls guests: a sans-IO connection core and the host's TLS policy.

``core`` wraps ``ssl.SSLObject`` over memory buffers, for clients and servers
alike, and never touches a socket or wasmtime. Beside it: ``state``, its life
cycle as a table; ``progress``, the handshake's stop points as a table;
``inbound``, the peer's bytes on their way to OpenSSL; ``facts``, what the
session negotiated; ``openssl``, the corners of ``ssl`` it relies on;
``client_hello`` and ``records``, the wire format it needs to see; ``errors``,
one exception with a kind. ``policy`` builds the host-owned
``ssl.SSLContext``s; ``identity`` holds certificates and keys; ``revocation`` the
operator's CRLs.

The names below are loaded on first use: ``identity`` brings in
``cryptography``, which a guest without TLS should not pay for at start-up.
"""

import importlib

_HOMES = {
    "ClientAuth": "policy", "TlsPolicy": "policy",
    "ErrorKind": "errors", "TlsFailure": "errors",
    "IdentityError": "identity", "IdentityPasswordError": "identity",
    "PrivateIdentity": "identity", "PublicIdentity": "identity",
    "Point": "progress", "TlsCore": "core", "CoreState": "core",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
