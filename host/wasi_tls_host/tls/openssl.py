"""The private corners of Python's ``ssl`` module the core relies on, each wrapped once.

* ``SSLContext._msg_callback`` reports every handshake message OpenSSL reads
  or writes (the decrypted TLS 1.3 ones too). It is the only way to learn,
  between two records, that the peer's Certificate or CertificateRequest has
  been processed. One dispatcher serves every context; it finds the
  connection's own observer through the ``SSLObject`` it is called with.
  It is installed through ``_ssl._SSLContext``'s own attribute, below the
  ``ssl.SSLContext`` property, whose wrapper turns every number of every
  message into an enum (a failed lookup raises and catches ValueError): that
  wrapper cost ~0.1 ms per handshake, an eighth of OpenSSL's own work.
* The peer's certificate chain as sent: ``SSLObject.get_unverified_chain`` is
  public from Python 3.13 and private (``_sslobj``) before.
* Whether OpenSSL takes a server name (`check_server_name`), asked of a
  throwaway ``SSLObject`` so that a bad name is refused before any byte is
  sent; the wire codes of its version and cipher names.

`tests/unit/test_tls_openssl.py` checks both on the running Python.
"""

from __future__ import annotations

import functools
import ssl
import weakref
from collections.abc import Callable

from .errors import without_source_line

#: (direction "read"/"write", protocol version, handshake message type, message bytes)
Observer = Callable[[str, int, int, bytes], None]

_HANDSHAKE = 22
# Both sides weak: the observer's owner holds the SSLObject, so a strong
# value would keep the entry (and the whole connection) alive forever.
_observers: weakref.WeakKeyDictionary[ssl.SSLObject, weakref.WeakMethod] = (
    weakref.WeakKeyDictionary())


def _dispatch(connection: ssl.SSLObject, direction: str, version: int, content_type: int,
              message_type: int, data: bytes) -> None:
    if content_type != _HANDSHAKE:
        return
    reference = _observers.get(connection)
    observer = reference() if reference is not None else None
    if observer is not None:
        observer(direction, version, message_type, data)


#: The C-level message callback slot (plain ints, no enum conversion).
# ssl._ssl is a private module the type stubs do not describe.
_MESSAGE_CALLBACK = ssl._ssl._SSLContext._msg_callback  # type: ignore[attr-defined]


def observe_handshake_messages(context: ssl.SSLContext) -> None:
    """Route the handshake messages of connections made from `context` to
    their observers. Idempotent, and harmless for connections without one."""
    if _MESSAGE_CALLBACK.__get__(context) is not _dispatch:
        _MESSAGE_CALLBACK.__set__(context, _dispatch)


def attach_observer(connection: ssl.SSLObject, observer: Observer) -> None:
    """`observer` is a bound method; it is held weakly."""
    _observers[connection] = weakref.WeakMethod(observer)


def unverified_chain(connection: ssl.SSLObject) -> tuple[bytes, ...]:
    """The peer's certificates as it sent them, leaf first, in DER; () if none."""
    public = getattr(connection, "get_unverified_chain", None)
    # Before Python 3.13 only the private _sslobj has it (and no stub says so).
    chain = (public() if public is not None
             else connection._sslobj.get_unverified_chain())  # type: ignore[attr-defined]
    # A server's list starts with the peer's leaf, None when it sent none.
    return tuple(cert if isinstance(cert, bytes) else cert.public_bytes(_DER)
                 for cert in chain or () if cert is not None)


_DER = ssl._ssl.ENCODING_DER  # type: ignore[attr-defined]  # private module, no stubs


@functools.cache
def _name_check_context() -> ssl.SSLContext:
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def check_server_name(name: str | None) -> None:
    """Raise ValueError for a server name OpenSSL would refuse, whatever the
    reason (empty, too long, bad characters), before any byte is sent."""
    if not name:
        raise ValueError("invalid server name: empty")
    try:
        _name_check_context().wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname=name)
    # Python refuses some names (ValueError, UnicodeError, TypeError), OpenSSL
    # others (SSLError: e.g. longer than 255 bytes): all are invalid names.
    except (ValueError, TypeError, ssl.SSLError) as error:
        raise ValueError(f"invalid server name {name!r}: {without_source_line(error)}") from None


#: The negotiated version's name, as ``SSLObject.version`` gives it, and its wire code.
PROTOCOL_CODES = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


@functools.cache
def cipher_codes() -> dict[str, int]:
    """OpenSSL's cipher names and their IANA codes (the low 16 bits of its ids)."""
    everything = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    everything.set_ciphers("ALL:@SECLEVEL=0")
    return {cipher["name"]: cipher["id"] & 0xFFFF for cipher in everything.get_ciphers()}
