"""What OpenSSL knows of a session, read from its ``SSLObject``.

`SessionFacts` is the part of `tls.core.TlsCore` that only asks and never
changes anything: the negotiated version and cipher, the ALPN id, the
peer's certificates. Each answer is None (or ``()``) until there is one, and
none raises: a connection that broke still tells what it had negotiated.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import TypeVar

from . import openssl
from .progress import Progress

_T = TypeVar("_T")


class SessionFacts:
    _obj: ssl.SSLObject | None  #: the connection's SSLObject, once the context is chosen
    _progress: Progress

    def peer_chain(self) -> tuple[bytes, ...]:
        """The peer's certificates as it sent them (DER, leaf first); () if none.

        Available as soon as the peer's Certificate message has been processed.
        """
        if self._obj is None:
            return ()
        try:
            return openssl.unverified_chain(self._obj)
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
