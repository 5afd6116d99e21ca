"""What a session has got to and what OpenSSL knows of it.

`SessionFacts` is the part of `tls.core.TlsCore` that only asks and never
changes anything: its state and how far the handshake got (from its
``tls.progress``), and what OpenSSL negotiated (read from its
``SSLObject``): the version and cipher, the ALPN id, the peer's
certificates. Each answer is None (or ``()``) until there is one, and none
raises: a connection that broke still tells what it had negotiated.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import TypeVar

from . import openssl
from .errors import TlsFailure
from .progress import Point, Progress
from .state import PEER_ENDED, CoreState

_T = TypeVar("_T")


class SessionFacts:
    _obj: ssl.SSLObject | None  #: the connection's SSLObject, once the context is chosen
    _progress: Progress
    _state: CoreState
    _error: TlsFailure | None

    # -- how far it got --------------------------------------------------------------
    @property
    def state(self) -> CoreState:
        return self._state

    @property
    def error(self) -> TlsFailure | None:
        """The sticky error of a broken connection, else ``None``."""
        return self._error

    @property
    def handshake_complete(self) -> bool:
        """The handshake completed (the connection may have closed or broken since)."""
        return self._progress.done

    @property
    def suspended_at(self) -> Point | None:
        return self._progress.limit if self._state is CoreState.SUSPENDED else None

    def reached(self, point: Point) -> bool:
        """Whether the handshake has got to `point` (TLS 1.3 does not pass
        them in order: its CertificateRequest comes before the certificate)."""
        return self._progress.reached(point)

    @property
    def started(self) -> bool:
        """Whether the context has been chosen (the SSLObject exists)."""
        return self._obj is not None

    @property
    def peer_closed(self) -> bool:
        """True once the plaintext stream from the peer has ended (any way)."""
        return self._state in PEER_ENDED

    @property
    def certificate_requested(self) -> bool:
        """Client: the server sent a CertificateRequest in the handshake."""
        return self._progress.certificate_requested

    @property
    def identity_committed(self) -> bool:
        """Client: OpenSSL has already written the Certificate message it answers with."""
        return self._progress.own_certificate is not None

    @property
    def own_certificate_message(self) -> bytes | None:
        """The Certificate handshake message this side sent, if any."""
        return self._progress.own_certificate

    @property
    def post_handshake_request(self) -> bool:
        """Server: a certificate request after the handshake awaits the client's answer."""
        return self._progress.post_handshake_request

    # -- what OpenSSL negotiated ---------------------------------------------------------
    def peer_chain(self) -> tuple[bytes, ...]:
        """The peer's certificates as it sent them (DER, leaf first); () if none.

        Available as soon as the peer's Certificate message has been
        processed. A peer that resumed a session sends none: the leaf it
        sent when the session was made stands for it (a session keeps only
        the leaf), once OpenSSL has finished the handshake.
        """
        if self._obj is None:
            return ()
        try:
            chain = openssl.unverified_chain(self._obj)
            if not chain and self._obj.session_reused:
                leaf = self._obj.getpeercert(binary_form=True)
                chain = (leaf,) if leaf else ()
            return chain
        except (ValueError, ssl.SSLError):
            return ()

    def _session_fact(self, read: Callable[[ssl.SSLObject], _T]) -> _T | None:
        """What OpenSSL knows once the handshake is complete (None before).
        OpenSSL refuses some questions while a post-handshake exchange runs."""
        if self._obj is None or not self._progress.done:
            return None
        try:
            return read(self._obj)
        except (ValueError, ssl.SSLError):
            return None

    def version(self) -> str | None:
        """Negotiated protocol ("TLSv1.3", "TLSv1.2", ...) or None."""
        return self._session_fact(ssl.SSLObject.version)

    def cipher(self) -> tuple[str, str, int] | None:
        """(name, protocol, secret bits) of the negotiated cipher, or None."""
        return self._session_fact(ssl.SSLObject.cipher)

    def alpn_protocol(self) -> str | None:
        """The ALPN protocol the server selected, or None."""
        return self._session_fact(ssl.SSLObject.selected_alpn_protocol)

    def session_reused(self) -> bool:
        """Whether the handshake resumed an earlier session (False before it completed)."""
        return bool(self._session_fact(lambda obj: obj.session_reused))

    def peer_certificate_der(self) -> bytes | None:
        """The peer's leaf certificate (DER), or None if it sent none."""
        return self._session_fact(lambda obj: obj.getpeercert(binary_form=True))

    def protocol_version(self) -> int | None:
        """The negotiated version as on the wire (0x0303, 0x0304), or None."""
        version = self.version()
        return None if version is None else openssl.PROTOCOL_CODES.get(version)

    def cipher_suite(self) -> int | None:
        """The IANA code of the negotiated cipher suite, or None."""
        cipher = self.cipher()
        return None if cipher is None else openssl.cipher_codes().get(cipher[0])
