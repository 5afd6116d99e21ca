"""TLS for wasi:tls guests: a sans-IO connection core and the host's TLS policy.

``core`` wraps ``ssl.SSLObject`` over memory buffers, for clients and servers
alike, and never touches a socket or wasmtime; ``policy`` builds the
host-owned ``ssl.SSLContext``s; ``identity`` holds certificates and keys,
``revocation`` the operator's CRLs; ``client_hello`` and ``records`` read
the wire format the core needs to see.

The names below are loaded on first use: ``identity`` brings in
``cryptography``, which a guest without TLS should not pay for at start-up.
"""

import importlib

_HOMES = {
    "ClientAuth": "policy", "TlsPolicy": "policy",
    "ErrorKind": "errors", "TlsFailure": "errors",
    "IdentityError": "identity", "IdentityPasswordError": "identity",
    "PrivateIdentity": "identity", "PublicIdentity": "identity",
    "Point": "core", "TlsCore": "core", "CoreState": "core",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
