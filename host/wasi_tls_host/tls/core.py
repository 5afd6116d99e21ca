"""Sans-IO TLS connection on top of the standard library's ``ssl`` module.

Theory of operation
-------------------
The host has to speak TLS on behalf of a WebAssembly guest whose transport is
a pair of WASI streams that the host itself implements.  Python's
``ssl.SSLSocket`` wants to own a real socket and block on it, which does not
fit: the bytes travel through host code, the guest polls, and nothing may
block.  So this module does no I/O at all.  It wraps an ``ssl.SSLObject``
whose two ends are ``ssl.MemoryBIO`` buffers:

    transport bytes --receive_ciphertext()--> [incoming BIO] --> OpenSSL
    OpenSSL --> [outgoing BIO] --ciphertext_to_send()--> transport bytes

The caller (the WASI glue) moves bytes between the BIOs and the network and
decides *when* to do so; this class only decides *what* the bytes mean.  That
keeps the TLS state machine testable in memory, with two instances wired
back to back, and keeps time (timeouts) out of it entirely.

Habits borrowed from sans-IO libraries (h11) and from trio's ssl wrapper:

* "Need more data" is a return value (``False`` from :meth:`handshake`,
  ``None`` from :meth:`read`), never an exception.  Exceptions mean failure.
* The handshake is an explicit step; reads and writes issued before it
  completes drive or wait for it instead of letting OpenSSL do it implicitly.
* Failures are sticky: the first fatal error puts the connection in the
  ``broken`` state and every later operation raises that same
  :class:`TLSError`.  OpenSSL's own behaviour after a fatal error is
  unhelpful (a retried handshake reports "Some I/O error occurred"), so it is
  never asked twice.  Whatever alert OpenSSL queued while failing stays in the
  outgoing BIO so the caller can still flush it to the peer.
* ``SSLObject.write`` is never called with empty data, and a write that
  OpenSSL refuses with ``SSL_ERROR_WANT_READ`` (possible during a
  renegotiation) is kept and retried with the same bytes later.
* close_notify is queued at most once; :meth:`close` is idempotent.  Before
  calling ``SSLObject.unwrap`` the incoming BIO is drained into a plaintext
  buffer, because ``unwrap`` runs ``SSL_shutdown`` twice and the second call
  fails with APPLICATION_DATA_AFTER_CLOSE_NOTIFY if application data is
  waiting.  Reading still works after our close_notify (TLS half-close).
* ``SSLObject.read`` returns ``b""`` once the peer's close_notify has been
  processed (and raises ``SSLZeroReturnError`` if we already sent ours); both
  are treated as end of stream, so no loop spins on an empty read.
* A transport EOF without close_notify is a possible truncation attack; it is
  reported once as a :class:`TLSError` and reads return ``b""`` afterwards,
  unless ``suppress_ragged_eofs`` asks for it to count as a clean EOF.

Nothing in this module imports wasmtime.
"""

from __future__ import annotations

import enum
import re
import ssl
import sys

__all__ = ["TLSConnection", "TLSError", "TLSState"]


class TLSState(enum.StrEnum):
    """Life cycle of a :class:`TLSConnection`.

    The members compare equal to their string values (``state == "open"``).
    """

    HANDSHAKING = "handshaking"  #: handshake not complete yet
    OPEN = "open"  #: handshake complete, this side may still write
    CLOSED = "closed"  #: :meth:`TLSConnection.close` was called on this side
    BROKEN = "broken"  #: a fatal error happened; every operation re-raises it


class TLSError(Exception):
    """A TLS failure with a specific, human-readable message.

    Attributes:
        message: the text (also ``str(error)``).
        kind: a coarse category, one of ``"certificate"`` (verification of
            the peer's certificate failed), ``"alert"`` (the peer sent a fatal
            alert), ``"not-tls"`` (the peer's bytes are not TLS records),
            ``"version"`` (no common protocol version), ``"eof"`` (the
            transport ended during the handshake, or writing after it ended),
            ``"truncated"`` (transport EOF without close_notify),
            ``"closed"`` (use after :meth:`TLSConnection.close`) and
            ``"protocol"`` (anything else OpenSSL reported).
        reason: OpenSSL's reason code name (e.g. ``"WRONG_VERSION_NUMBER"``)
            when the error came from the library, else ``None``.
        alert: the alert description (``"handshake failure"``) for
            ``kind == "alert"``, else ``None``.
        verify_code: the X.509 verification result code for
            ``kind == "certificate"``, else ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str = "protocol",
        reason: str | None = None,
        alert: str | None = None,
        verify_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.reason = reason
        self.alert = alert
        self.verify_code = verify_code

    def __str__(self) -> str:
        return self.message


# Reason names OpenSSL uses for "the peer sent this alert".  Most follow the
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
_NOT_TLS_REASONS = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "UNKNOWN_PROTOCOL",
        "HTTP_REQUEST",
        "HTTPS_PROXY_REQUEST",
        "PACKET_LENGTH_TOO_LONG",
    }
)
# Reasons that mean both sides are TLS but share no protocol version.
_VERSION_REASONS = frozenset(
    {
        "UNSUPPORTED_PROTOCOL",
        "NO_PROTOCOLS_AVAILABLE",
        "VERSION_TOO_LOW",
        "VERSION_TOO_HIGH",
        "WRONG_SSL_VERSION",
        "TLSV1_ALERT_PROTOCOL_VERSION",
    }
)
_SSL_C_SUFFIX = re.compile(r"\s*\(_ssl\.c:\d+\)$")

MSG_TRUNCATED = "peer closed without close_notify (truncated)"
MSG_EOF_IN_HANDSHAKE = "peer closed the connection during the handshake"
MSG_CLOSED_FOR_WRITING = "connection closed for writing"


def _humanize(reason: str) -> str:
    return reason.lower().replace("_", " ")


def _translate(
    exc: ssl.SSLError, *, during_handshake: bool, server_side: bool, server_hostname: str | None
) -> TLSError:
    """Turn an ``ssl`` exception into a :class:`TLSError` with a specific message."""
    reason = getattr(exc, "reason", None)

    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = exc.verify_message or _humanize(reason or "certificate verify failed")
        if server_side:
            whose = "client certificate"
        else:
            whose = f"server name: {server_hostname}"
        return TLSError(
            f"certificate verify failed: {detail} ({whose})",
            kind="certificate",
            reason=reason,
            verify_code=exc.verify_code,
        )

    if isinstance(exc, ssl.SSLZeroReturnError) and during_handshake:
        return TLSError(f"{MSG_EOF_IN_HANDSHAKE} (close_notify)", kind="eof", reason=reason)
    if isinstance(exc, ssl.SSLEOFError):
        if during_handshake:
            return TLSError(MSG_EOF_IN_HANDSHAKE, kind="eof", reason=reason)
        return TLSError(MSG_TRUNCATED, kind="truncated", reason=reason)

    if reason:
        match = _ALERT_REASON.match(reason)
        alert = _humanize(match.group("name")) if match else _IRREGULAR_ALERT_REASONS.get(reason)
        if alert is not None:
            return TLSError(
                f"peer sent alert: {alert} [{reason}]",
                kind="version" if reason in _VERSION_REASONS else "alert",
                reason=reason,
                alert=alert,
            )
        if reason in _NOT_TLS_REASONS:
            return TLSError(
                f"peer sent data that is not TLS: {_humanize(reason)} [{reason}]",
                kind="not-tls",
                reason=reason,
            )
        if reason in _VERSION_REASONS:
            return TLSError(
                f"no TLS protocol version in common with the peer: {_humanize(reason)} [{reason}]",
                kind="version",
                reason=reason,
            )
        where = "TLS handshake failed" if during_handshake else "TLS error"
        return TLSError(f"{where}: {_humanize(reason)} [{reason}]", kind="protocol", reason=reason)

    raw = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    text = _SSL_C_SUFFIX.sub("", raw) or type(exc).__name__
    where = "TLS handshake failed" if during_handshake else "TLS error"
    return TLSError(f"{where}: {text}", kind="protocol")


class TLSConnection:
    """One TLS session, client or server, driven entirely by the caller.

    Transport side: feed bytes from the network with :meth:`receive_ciphertext`
    / :meth:`receive_eof`, and send whatever :meth:`ciphertext_to_send`
    returns after *every* call (it may be ``b""``).

    Application side: :meth:`handshake` until it returns ``True``, then
    :meth:`read` / :meth:`write`, and :meth:`close` to send close_notify.

    Error behaviour: a fatal error raises :class:`TLSError` and moves the
    connection to ``"broken"``; from then on :meth:`handshake`, :meth:`read`,
    :meth:`write` and :meth:`receive_ciphertext` raise that same error object,
    :meth:`ciphertext_to_send` still drains any queued alert,
    :meth:`receive_eof` and :meth:`close` do nothing, and
    :meth:`wants_ciphertext` returns ``False``.
    """

    #: Plaintext requested from OpenSSL per call: one full record.
    _CHUNK = 16384

    def __init__(
        self,
        context: ssl.SSLContext,
        *,
        server_side: bool = False,
        server_hostname: str | None = None,
        suppress_ragged_eofs: bool = False,
    ) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        # ValueError from here (e.g. check_hostname without server_hostname)
        # is a configuration bug of the caller and is left as is.
        self._obj = context.wrap_bio(
            self._incoming,
            self._outgoing,
            server_side=server_side,
            server_hostname=server_hostname,
        )
        self._server_side = server_side
        self._server_hostname = server_hostname
        self._suppress_ragged_eofs = suppress_ragged_eofs

        self._state = TLSState.HANDSHAKING
        self._error: TLSError | None = None  # sticky fatal error (state BROKEN)
        self._handshake_done = False

        self._rx = bytearray()  # decrypted plaintext not yet returned by read()
        self._rx_eof = False  # end of the plaintext stream has been reached
        self._rx_error: TLSError | None = None  # error to raise once _rx is drained

        self._tx = bytearray()  # plaintext accepted by write() but not yet encrypted
        self._close_requested = False
        self._close_notify_sent = False

        self._transport_eof = False
        self._ssl_dead = False  # OpenSSL hit a fatal condition (e.g. ragged EOF)
        self._blocked_on_input = False  # last attempt needed more ciphertext

    # ------------------------------------------------------------------
    # state
    @property
    def state(self) -> TLSState:
        return self._state

    @property
    def error(self) -> TLSError | None:
        """The sticky error of a broken connection, else ``None``."""
        return self._error

    @property
    def server_side(self) -> bool:
        return self._server_side

    @property
    def server_hostname(self) -> str | None:
        return self._server_hostname

    @property
    def handshake_complete(self) -> bool:
        return self._handshake_done

    @property
    def peer_closed(self) -> bool:
        """True once the plaintext stream from the peer has ended (any way)."""
        return self._rx_eof

    @property
    def close_notify_sent(self) -> bool:
        """True once our close_notify has been queued in the outgoing buffer."""
        return self._close_notify_sent

    def _fail(self, error: TLSError) -> None:
        """Enter the broken state with ``error`` and raise it."""
        if self._error is None:
            self._error = error
            self._state = TLSState.BROKEN
            self._rx.clear()
            self._tx.clear()
            self._blocked_on_input = False
        raise self._error

    def _raise_if_broken(self) -> None:
        if self._error is not None:
            # The same object every time; drop the old traceback so repeated
            # raises do not keep growing it.
            raise self._error.with_traceback(None)

    def _translate(self, exc: ssl.SSLError, *, during_handshake: bool) -> TLSError:
        return _translate(
            exc,
            during_handshake=during_handshake,
            server_side=self._server_side,
            server_hostname=self._server_hostname,
        )

    # ------------------------------------------------------------------
    # transport side
    def receive_ciphertext(self, data: bytes) -> None:
        """Hand bytes read from the transport to TLS.  Empty data is ignored."""
        self._raise_if_broken()
        if not data:
            return
        if self._transport_eof:
            raise ValueError("receive_ciphertext() called after receive_eof()")
        self._incoming.write(data)
        self._blocked_on_input = False

    def receive_eof(self) -> None:
        """Tell TLS that the transport reached end of file.  Idempotent."""
        if self._transport_eof:
            return
        self._transport_eof = True
        self._blocked_on_input = False
        self._incoming.write_eof()

    def ciphertext_to_send(self) -> bytes:
        """Return (and forget) every byte waiting to go to the transport.

        Never raises; a connection that just broke still yields the alert
        OpenSSL queued while failing.
        """
        if self._tx and self._error is None:
            try:
                self._flush_tx()
            except TLSError:
                pass  # recorded as the sticky error; raised by the next operation
        return self._outgoing.read()

    def ciphertext_pending(self) -> int:
        """Number of bytes :meth:`ciphertext_to_send` would return now."""
        return self._outgoing.pending

    def wants_ciphertext(self) -> bool:
        """True when the last handshake/read (or write retry) attempt stopped
        for lack of input.

        It becomes False again as soon as new ciphertext (or EOF) arrives, so
        the caller should retry the operation and ask again.
        """
        return (
            self._blocked_on_input
            and self._error is None
            and not self._transport_eof
            and not self._rx_eof
            and not self._rx
            and self._rx_error is None
        )

    # ------------------------------------------------------------------
    # handshake
    def handshake(self) -> bool:
        """Drive the handshake.

        Returns ``True`` once it is complete (and on every later call),
        ``False`` when more ciphertext from the peer is needed: send what
        :meth:`ciphertext_to_send` returns, feed the reply, call again.
        Raises :class:`TLSError` on failure.
        """
        self._raise_if_broken()
        if self._handshake_done:
            return True
        if self._close_requested:
            raise TLSError("connection closed before the handshake completed", kind="closed")
        try:
            self._obj.do_handshake()
        except ssl.SSLWantReadError:
            self._blocked_on_input = True
            return False
        except ssl.SSLError as exc:
            self._fail(self._translate(exc, during_handshake=True))
        self._handshake_done = True
        self._blocked_on_input = False
        self._state = TLSState.OPEN
        if self._tx:
            self._flush_tx()
        return True

    # ------------------------------------------------------------------
    # application data
    def read(self, max_bytes: int) -> bytes | None:
        """Return up to ``max_bytes`` of plaintext.

        ``None``: nothing available yet (feed more ciphertext, or wait).
        ``b""``: the peer ended the stream cleanly (close_notify), and on
        every call after that.  A transport EOF without close_notify raises
        ``TLSError("peer closed without close_notify (truncated)")`` once
        (after any plaintext received before it), then reads return ``b""``.
        While the handshake is still running this drives it and returns
        ``None`` until it completes.
        """
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        self._raise_if_broken()
        if not self._handshake_done:
            if self._close_requested:
                return b""
            if not self.handshake():
                return None
        self._fill(max_bytes)
        if self._rx:
            if len(self._rx) <= max_bytes:
                out = bytes(self._rx)
                self._rx.clear()
            else:
                out = bytes(self._rx[:max_bytes])
                del self._rx[:max_bytes]
            return out
        if self._rx_error is not None:
            error, self._rx_error = self._rx_error, None
            if error.kind == "truncated":
                raise error  # reported once; _rx_eof is set, later reads give b""
            self._fail(error)
        if self._rx_eof:
            return b""
        return None

    def read_ready(self) -> bool:
        """True when :meth:`read` would return without needing more ciphertext.

        That is: plaintext is buffered, the stream has ended, or an error is
        waiting to be raised.  Decrypts whatever complete records are already
        buffered, so it is cheap but not free.  Never raises.
        """
        if self._error is not None:
            return True
        if not self._handshake_done:
            if self._close_requested:
                return True
            try:
                if not self.handshake():
                    return False
            except TLSError:
                return True
        self._fill(1)
        return bool(self._rx) or self._rx_eof or self._rx_error is not None

    def _fill(self, want: int) -> None:
        """Decrypt buffered records into ``_rx`` until it holds ``want`` bytes
        or OpenSSL needs more input.  Stream end and errors are recorded, not
        raised, so plaintext that arrived before them is delivered first."""
        if self._rx_eof or self._rx_error is not None or self._ssl_dead:
            return
        progressed = False
        while len(self._rx) < want:
            try:
                chunk = self._obj.read(self._CHUNK)
            except ssl.SSLWantReadError:
                self._blocked_on_input = True
                break
            except ssl.SSLZeroReturnError:
                # close_notify after we sent ours
                self._rx_eof = True
                break
            except ssl.SSLEOFError as exc:
                # The transport ended without close_notify.  OpenSSL now
                # considers the session dead (writes fail too).
                self._ssl_dead = True
                self._rx_eof = True
                if not self._suppress_ragged_eofs:
                    self._rx_error = self._translate(exc, during_handshake=False)
                break
            except ssl.SSLError as exc:
                self._rx_error = self._translate(exc, during_handshake=False)
                break
            if not chunk:
                # close_notify processed: SSLObject.read returns b"" from now on
                self._rx_eof = True
                break
            self._rx += chunk
            progressed = True
        if progressed and self._tx:
            # A write that was waiting for the peer (renegotiation) may go now.
            try:
                self._flush_tx()
            except TLSError:
                pass  # sticky; raised by the next operation

    def write(self, data: bytes) -> None:
        """Encrypt all of ``data`` for the peer (then call ciphertext_to_send).

        ``b""`` is a no-op.  Data written before the handshake completes is
        kept and encrypted once it does.  Raises :class:`TLSError` after
        :meth:`close` ("connection closed for writing") or when broken.
        """
        self._raise_if_broken()
        if self._close_requested:
            raise TLSError(MSG_CLOSED_FOR_WRITING, kind="closed")
        if self._ssl_dead:
            raise TLSError("cannot write: the transport ended without close_notify", kind="eof")
        if not data:
            return
        if not self._handshake_done or self._tx:
            self._tx += data
            if self._handshake_done:
                self._flush_tx()
            return
        self._write_now(data)

    def _write_now(self, data) -> None:
        view = memoryview(data)
        while view:
            try:
                written = self._obj.write(view)
            except ssl.SSLWantReadError:
                # Only possible while OpenSSL waits for the peer (for example a
                # renegotiation); keep the exact bytes for a retry.
                self._tx += view
                self._blocked_on_input = True
                return
            except ssl.SSLError as exc:
                self._fail(self._translate(exc, during_handshake=False))
            view = view[written:]

    def _flush_tx(self) -> None:
        """Retry plaintext that OpenSSL could not take yet."""
        while self._tx:
            try:
                written = self._obj.write(self._tx)
            except ssl.SSLWantReadError:
                self._blocked_on_input = True
                return
            except ssl.SSLError as exc:
                self._fail(self._translate(exc, during_handshake=False))
            del self._tx[:written]
        if self._close_requested and not self._close_notify_sent:
            self._send_close_notify()

    def close(self) -> None:
        """Queue close_notify (once) and refuse further writes.  Idempotent.

        Reading stays possible: the peer may keep sending until its own
        close_notify (read then returns ``b""``).  Before the handshake
        completes there is no close_notify to send; the connection just
        becomes ``"closed"``.
        """
        if self._error is not None or self._close_requested:
            return
        self._close_requested = True
        self._state = TLSState.CLOSED
        if not self._handshake_done or self._ssl_dead:
            self._tx.clear()
            return
        if self._tx:
            try:
                self._flush_tx()  # sends close_notify when the backlog is gone
            except TLSError:
                pass
            return
        self._send_close_notify()

    def _send_close_notify(self) -> None:
        # unwrap() calls SSL_shutdown twice; the second call reads, and fails
        # with APPLICATION_DATA_AFTER_CLOSE_NOTIFY if records are waiting.
        # So decrypt everything already received into _rx first.
        self._fill(sys.maxsize)
        if self._ssl_dead or (self._rx_error is not None and self._rx_error.kind != "truncated"):
            return
        self._close_notify_sent = True
        try:
            self._obj.unwrap()
        except ssl.SSLWantReadError:
            pass  # close_notify queued; the peer's has not arrived yet
        except ssl.SSLError:
            # Nothing useful to report from a failed goodbye; the state of the
            # read side is already recorded by _fill.
            pass

    # ------------------------------------------------------------------
    # information about the session
    def version(self) -> str | None:
        """Negotiated protocol ("TLSv1.3", "TLSv1.2", ...) or None."""
        if not self._handshake_done:
            return None
        try:
            return self._obj.version()
        except (ValueError, ssl.SSLError):  # pragma: no cover - defensive
            return None

    def cipher(self) -> tuple | None:
        """(name, protocol, secret bits) of the negotiated cipher, or None."""
        if not self._handshake_done:
            return None
        try:
            return self._obj.cipher()
        except (ValueError, ssl.SSLError):  # pragma: no cover - defensive
            return None

    def alpn_protocol(self) -> str | None:
        """The ALPN protocol the server selected, or None."""
        if not self._handshake_done:
            return None
        try:
            return self._obj.selected_alpn_protocol()
        except (ValueError, ssl.SSLError):  # pragma: no cover - defensive
            return None

    def peer_certificate_der(self) -> bytes | None:
        """The peer's leaf certificate (DER), or None if it sent none."""
        if not self._handshake_done:
            return None
        try:
            return self._obj.getpeercert(binary_form=True)
        except (ValueError, ssl.SSLError):  # pragma: no cover - defensive
            return None

    def __repr__(self) -> str:
        role = "server" if self._server_side else f"client {self._server_hostname!r}"
        return f"<TLSConnection {role} {self._state.value}>"
