"""wasi:http's `error-code`, and how every failure of the host becomes one.

An `error-code` is the `Case` the guest receives (the codec lowers it from
the WIT type). Inside the host a failure travels as `HttpFailure`, which
carries the code and a sentence for people: the sentence is what a failed
body stream's `io-error` says (`to-debug-string`), and `http-error-code`
gives back the code (`HttpStreamFailed`). The translations below are the
only places that decide which case a TLS failure, a socket error, a
resolver answer or an h11 complaint is.
"""

from __future__ import annotations

import errno
import os

import h11

from ..runtime.errors import ErrorValue
from ..runtime.streams import StreamFailed
from ..runtime.values import Case
from ..tls.errors import ErrorKind, TlsFailure


class HttpFailure(Exception):
    """A failure of an HTTP exchange: `code` for the guest, `message` for people."""

    def __init__(self, code: Case, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def stream_error(self) -> HttpStreamFailed:
        return HttpStreamFailed(self)

    def error_value(self) -> ErrorValue:
        return ErrorValue(self.code)


class HttpStreamFailed(StreamFailed):
    """A body stream's failure; `http_code` is what `http-error-code` returns."""

    def __init__(self, failure: HttpFailure):
        super().__init__(failure.message)
        self.http_code = failure.code


def code(tag: str, payload: object = None) -> Case:
    return Case(tag, payload)


def failure(tag: str, message: str, payload: object = None) -> HttpFailure:
    return HttpFailure(Case(tag, payload), message)


def internal_error(message: str) -> HttpFailure:
    return HttpFailure(Case("internal-error", message), message)


def dns_error(rcode: str, message: str) -> HttpFailure:
    return HttpFailure(Case("DNS-error", {"rcode": rcode, "info-code": None}), message)


def body_size(context: str, size: int | None) -> Case:
    """`HTTP-request-body-size` or `HTTP-response-body-size`, by whose body it is."""
    return Case(f"HTTP-{context}-body-size", size)


# -- TLS ------------------------------------------------------------------------

#: Alert descriptions (RFC 8446 §6, RFC 5246 §7.2) by the words `tls.errors`
#: makes of OpenSSL's reason names.
ALERT_IDS = {
    "close notify": 0, "unexpected message": 10, "bad record mac": 20,
    "decryption failed": 21, "record overflow": 22, "decompression failure": 30,
    "handshake failure": 40, "no certificate": 41, "bad certificate": 42,
    "unsupported certificate": 43, "certificate revoked": 44, "certificate expired": 45,
    "certificate unknown": 46, "illegal parameter": 47, "unknown ca": 48,
    "access denied": 49, "decode error": 50, "decrypt error": 51,
    "export restriction": 60, "protocol version": 70, "insufficient security": 71,
    "internal error": 80, "inappropriate fallback": 86, "user cancelled": 90,
    "no renegotiation": 100, "missing extension": 109, "unsupported extension": 110,
    "certificate unobtainable": 111, "unrecognized name": 112,
    "bad certificate status response": 113, "bad certificate hash value": 114,
    "unknown psk identity": 115, "certificate required": 116,
    "no application protocol": 120,
}


def from_tls(error: TlsFailure) -> HttpFailure:
    """The error-code of a failed TLS connection; the message is the core's,
    with OpenSSL's reason in it. Only the alert case has room for it in the
    code itself (its alert-message)."""
    message = error.message
    if error.alert is not None:
        return failure("TLS-alert-received", message, {
            "alert-id": ALERT_IDS.get(error.alert), "alert-message": message})
    kind = error.kind
    if kind is ErrorKind.CERTIFICATE:
        return failure("TLS-certificate-error", message)
    if kind is ErrorKind.TIMEOUT:
        return failure("connection-timeout", message)
    if kind is ErrorKind.EOF:
        return failure("connection-terminated", message)
    if kind is ErrorKind.TRUNCATED:
        return failure("HTTP-response-incomplete", message)
    if kind is ErrorKind.CONFIGURATION:
        return failure("configuration-error", message)
    return failure("TLS-protocol-error", message)


# -- sockets and names ----------------------------------------------------------

_CONNECT_CODES = {
    errno.ECONNREFUSED: "connection-refused",
    errno.ETIMEDOUT: "connection-timeout",
    errno.ENETUNREACH: "destination-IP-unroutable",
    errno.EHOSTUNREACH: "destination-IP-unroutable",
    errno.ENETDOWN: "destination-unavailable",
    errno.EACCES: "destination-IP-prohibited",
    errno.EPERM: "destination-IP-prohibited",
    errno.ECONNRESET: "connection-terminated",
    errno.ECONNABORTED: "connection-terminated",
    errno.EPIPE: "connection-terminated",
}


def from_connect(error_number: int, where: str) -> HttpFailure:
    """A failed TCP connect (`where` says to what)."""
    text = (f"connect to {where}: {errno.errorcode.get(error_number, error_number)} "
            f"({os.strerror(error_number)})")
    tag = _CONNECT_CODES.get(error_number)
    return failure(tag, text) if tag else internal_error(text)


def from_transport(error: StreamFailed) -> HttpFailure:
    """A plain TCP stream that failed under the HTTP connection."""
    if error.network_code in ("connection-reset", "connection-aborted"):
        return failure("connection-terminated", error.message)
    if error.network_code == "timeout":
        return failure("connection-read-timeout", error.message)
    return internal_error(error.message)


def from_resolver(resolver_code: str, host: str) -> HttpFailure:
    """A failed name lookup (the resolver's wasi:sockets code is the rcode)."""
    return dns_error(resolver_code, f"cannot resolve {host}: {resolver_code}")


# -- HTTP/1.1 -------------------------------------------------------------------

def from_remote_protocol(error: h11.RemoteProtocolError, context: str, *,
                         cut_short: bool) -> HttpFailure:
    """What h11 found wrong in the peer's message (`context`: "request" or
    "response"; `cut_short`: the peer closed the connection part-way
    through it). A head over the size limit is the header-section-size case."""
    text = f"HTTP protocol error from the peer: {error}"
    if error.error_status_hint == 431:
        return failure(f"HTTP-{context}-header-section-size", text)
    if cut_short and context == "response":
        return failure("HTTP-response-incomplete", text)
    return failure("HTTP-protocol-error", text)
