"""TLS failures as the host reports them: one exception type, a kind, a specific message.

`translate` turns what the ``ssl`` module raises into a `TlsFailure` whose
message names the cause the way a person debugging a connection wants to
read it ("certificate verify failed: certificate has expired (server name:
example.com)", "peer sent alert: handshake failure [...]").
"""

from __future__ import annotations

import enum
import re
import ssl


class ErrorKind(enum.StrEnum):
    """Coarse categories of `TlsFailure`; members compare equal to their values."""

    CERTIFICATE = "certificate"  #: the peer's certificate failed verification
    ALERT = "alert"  #: the peer sent a fatal alert
    NOT_TLS = "not-tls"  #: the peer's bytes are not TLS records
    VERSION = "version"  #: no protocol version in common
    EOF = "eof"  #: the transport ended during the handshake, or writing after it ended
    TRUNCATED = "truncated"  #: transport EOF without close_notify
    CLOSED = "closed"  #: use after close
    TIMEOUT = "timeout"  #: the handshake took longer than the host allows
    ABORTED = "aborted"  #: this side abandoned the handshake
    CONFIGURATION = "configuration"  #: the host or guest configuration cannot work
    PROTOCOL = "protocol"  #: anything else OpenSSL reported


class TlsFailure(Exception):
    """A TLS failure with a specific, human-readable message.

    Attributes:
        message: the text (also ``str(error)``).
        kind: an `ErrorKind`.
        reason: OpenSSL's reason code name (e.g. ``"WRONG_VERSION_NUMBER"``)
            when the error came from the library, else ``None``.
        alert: the alert description (``"handshake failure"``) for
            ``kind == "alert"``, else ``None``.
        verify_code: the X.509 verification result code for
            ``kind == "certificate"``, else ``None``.
    """

    def __init__(self, message: str, *, kind: ErrorKind = ErrorKind.PROTOCOL,
                 reason: str | None = None, alert: str | None = None,
                 verify_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.kind = ErrorKind(kind)
        self.reason = reason
        self.alert = alert
        self.verify_code = verify_code

    def __str__(self) -> str:
        return self.message


MSG_TRUNCATED = "peer closed without close_notify (truncated)"
MSG_EOF_IN_HANDSHAKE = "peer closed the connection during the handshake"
MSG_CLOSED_FOR_WRITING = "connection closed for writing"

# Reason names OpenSSL uses for "the peer sent this alert". Most follow the
# <version>_ALERT_<name> pattern; a few alert reasons (codes 1110-1114) do not.
_ALERT_REASON = re.compile(r"^(?:SSLV3|TLSV1|TLSV1_1|TLSV1_2|TLSV13)_ALERT_(?P<name>[A-Z0-9_]+)$")
_IRREGULAR_ALERT_REASONS = {
    "TLSV1_UNSUPPORTED_EXTENSION": "unsupported extension",
    "TLSV1_CERTIFICATE_UNOBTAINABLE": "certificate unobtainable",
    "TLSV1_UNRECOGNIZED_NAME": "unrecognized name",
    "TLSV1_BAD_CERTIFICATE_STATUS_RESPONSE": "bad certificate status response",
    "TLSV1_BAD_CERTIFICATE_HASH_VALUE": "bad certificate hash value",
}
# Reasons that mean the bytes from the peer were not TLS records at all
# (a plaintext server, an HTTP request, random garbage).
_NOT_TLS_REASONS = frozenset({
    "WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "HTTP_REQUEST", "HTTPS_PROXY_REQUEST",
    "PACKET_LENGTH_TOO_LONG",
})
# Reasons that mean both sides are TLS but share no protocol version.
_VERSION_REASONS = frozenset({
    "UNSUPPORTED_PROTOCOL", "NO_PROTOCOLS_AVAILABLE", "VERSION_TOO_LOW", "VERSION_TOO_HIGH",
    "WRONG_SSL_VERSION", "TLSV1_ALERT_PROTOCOL_VERSION",
})
_SSL_C_SUFFIX = re.compile(r"\s*\(_ssl\.c:\d+\)$")


def without_source_line(error: Exception) -> str:
    """The exception's text without the "(_ssl.c:1234)" CPython appends."""
    return _SSL_C_SUFFIX.sub("", str(error))


def humanize(reason: str) -> str:
    """An OpenSSL reason code as words: CERTIFICATE_VERIFY_FAILED, certificate verify failed."""
    return reason.lower().replace("_", " ")


def translate(exc: ssl.SSLError, *, during_handshake: bool, server_side: bool,
              server_hostname: str | None) -> TlsFailure:
    """Turn an ``ssl`` exception into a `TlsFailure` with a specific message."""
    reason = getattr(exc, "reason", None)
    where = "TLS handshake failed" if during_handshake else "TLS error"

    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = exc.verify_message or humanize(reason or "certificate verify failed")
        whose = "client certificate" if server_side else f"server name: {server_hostname}"
        return TlsFailure(f"certificate verify failed: {detail} ({whose})",
                        kind=ErrorKind.CERTIFICATE, reason=reason, verify_code=exc.verify_code)
    if isinstance(exc, ssl.SSLZeroReturnError) and during_handshake:
        return TlsFailure(f"{MSG_EOF_IN_HANDSHAKE} (close_notify)", kind=ErrorKind.EOF,
                        reason=reason)
    if isinstance(exc, ssl.SSLEOFError):
        if during_handshake:
            return TlsFailure(MSG_EOF_IN_HANDSHAKE, kind=ErrorKind.EOF, reason=reason)
        return TlsFailure(MSG_TRUNCATED, kind=ErrorKind.TRUNCATED, reason=reason)
    if reason:
        match = _ALERT_REASON.match(reason)
        alert = humanize(match.group("name")) if match else _IRREGULAR_ALERT_REASONS.get(reason)
        if alert is not None:
            kind = ErrorKind.VERSION if reason in _VERSION_REASONS else ErrorKind.ALERT
            return TlsFailure(f"peer sent alert: {alert} [{reason}]", kind=kind, reason=reason,
                            alert=alert)
        if reason in _NOT_TLS_REASONS:
            return TlsFailure(f"peer sent data that is not TLS: {humanize(reason)} [{reason}]",
                            kind=ErrorKind.NOT_TLS, reason=reason)
        if reason in _VERSION_REASONS:
            return TlsFailure(
                f"no TLS protocol version in common with the peer: {humanize(reason)} "
                f"[{reason}]", kind=ErrorKind.VERSION, reason=reason)
        return TlsFailure(f"{where}: {humanize(reason)} [{reason}]", reason=reason)
    raw = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    return TlsFailure(f"{where}: {_SSL_C_SUFFIX.sub('', raw) or type(exc).__name__}")
