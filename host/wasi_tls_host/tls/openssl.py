"""The private corners of Python's ``ssl`` module the core relies on, each wrapped once.

* ``SSLContext._msg_callback`` reports every handshake message OpenSSL reads
  or writes (the decrypted TLS 1.3 ones too), and the header of every record.
  It is the only way to learn, between two records, that the peer's
  Certificate or CertificateRequest has been processed, and how many records
  this side wrote. One dispatcher serves every context; it finds the
  connection's own observers through the ``SSLObject`` it is called with.
  It is installed through ``_ssl._SSLContext``'s own attribute, below the
  ``ssl.SSLContext`` property, whose wrapper turns every number of every
  message into an enum (a failed lookup raises and catches ValueError): that
  wrapper cost ~0.1 ms per handshake, an eighth of OpenSSL's own work.
* The traffic secrets, for the alerts the host protects itself
  (``tls.alerts``): OpenSSL hands each to its key log callback, and Python's
  ``ssl`` uses that slot only to write ``keylog_filename``. `observe_secrets`
  puts a callback of ours in it through ``ctypes`` (the libssl ``_ssl`` is
  linked with, and the ``SSL_CTX`` pointer that ``_ssl._SSLContext`` keeps
  first after its object header), which calls the one it replaced, so the
  operator's key log file is still written. The callback finds the
  connection through the ``SSL``'s app data, which ``_ssl`` sets to its
  ``_SSLSocket``.
* The peer's certificate chain as sent: ``SSLObject.get_unverified_chain`` is
  public from Python 3.13 and private (``_sslobj``) before.
* Whether OpenSSL takes a server name (`check_server_name`), asked of a
  throwaway ``SSLObject`` so that a bad name is refused before any byte is
  sent; the wire codes of its version and cipher names.

`tests/unit/test_tls_openssl.py` checks each on the running Python.
"""

from __future__ import annotations

import ctypes
import functools
import ssl
import sys
import weakref
from collections.abc import Callable

from .errors import without_source_line

#: (direction "read"/"write", protocol version, handshake message type, message bytes)
Observer = Callable[[str, int, int, bytes], None]
#: The content type of a record this side wrote.
RecordObserver = Callable[[int], None]
#: (key log label, secret, client random + server random for a TLS 1.2 master secret)
SecretObserver = Callable[[str, bytes, bytes], None]

_HANDSHAKE = 22
_RECORD_HEADER = 256  # OpenSSL's SSL3_RT_HEADER: the callback's data is a record header
_WRITE = "write"


class _Observers:
    """One connection's observers, kept on its ``SSLObject`` (`_OBSERVERS`):
    they live exactly as long as the connection, with no registry to clean
    up. The observers' owner holds the ``SSLObject``, never the reverse, so
    this makes no reference cycle."""

    __slots__ = ("messages", "records", "secrets")

    def __init__(self, messages: Observer, records: RecordObserver | None,
                 secrets: SecretObserver | None) -> None:
        self.messages = messages
        self.records = records
        self.secrets = secrets


#: The ``SSLObject`` attribute that holds its `_Observers`.
_OBSERVERS = "_wasi_tls_host_observers"
#: Each connection that observes its secrets, by the address of its
#: ``_SSLSocket``, for the key log callback (which is given only the ``SSL``).
_by_address: weakref.WeakValueDictionary[int, ssl.SSLObject] = weakref.WeakValueDictionary()


def _dispatch(connection: ssl.SSLObject, direction: str, version: int, content_type: int,
              message_type: int, data: bytes) -> None:
    if content_type == _HANDSHAKE:
        observers = getattr(connection, _OBSERVERS, None)
        if observers is not None:
            observers.messages(direction, version, message_type, data)
    elif content_type == _RECORD_HEADER and direction == _WRITE:
        observers = getattr(connection, _OBSERVERS, None)
        if observers is not None and observers.records is not None:
            observers.records(message_type)  # a header's message type is the record's content type


#: The C-level message callback slot (plain ints, no enum conversion).
# ssl._ssl is a private module the type stubs do not describe.
_MESSAGE_CALLBACK = ssl._ssl._SSLContext._msg_callback  # type: ignore[attr-defined]


def observe_handshake_messages(context: ssl.SSLContext) -> None:
    """Route the handshake messages and record headers of connections made
    from `context` to their observers. Idempotent, and harmless for
    connections without one."""
    if _MESSAGE_CALLBACK.__get__(context) is not _dispatch:
        _MESSAGE_CALLBACK.__set__(context, _dispatch)


def attach_observer(connection: ssl.SSLObject, observer: Observer, *,
                    records: RecordObserver | None = None,
                    secrets: SecretObserver | None = None) -> None:
    """Observers are usually bound methods; `connection` keeps them until it
    is gone. Attaching again replaces them all (leave `records` and
    `secrets` out to stop those reports)."""
    setattr(connection, _OBSERVERS, _Observers(observer, records, secrets))
    if secrets is not None:
        _by_address[id(connection._sslobj)] = connection  # type: ignore[attr-defined]


def stop_handshake_reports(connection: ssl.SSLObject) -> None:
    """Stop the reports only a handshake needs (the records `connection`
    writes, its secrets); its messages are still observed."""
    observers = getattr(connection, _OBSERVERS, None)
    if observers is not None:
        observers.records = observers.secrets = None


# -- the key log -------------------------------------------------------------------

#: OpenSSL's ``void (*)(const SSL *, const char *line)``.
_KeylogCallback = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p)
_RANDOM_SIZE = 32
_PROTOTYPES = {  # name: (result, arguments)
    "SSL_CTX_get_options": (ctypes.c_uint64, [ctypes.c_void_p]),
    "SSL_CTX_get_keylog_callback": (ctypes.c_void_p, [ctypes.c_void_p]),
    "SSL_CTX_set_keylog_callback": (None, [ctypes.c_void_p, ctypes.c_void_p]),
    "SSL_get_SSL_CTX": (ctypes.c_void_p, [ctypes.c_void_p]),
    "SSL_get_ex_data": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_int]),
    "SSL_get_server_random": (ctypes.c_size_t, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]),
}


def _load_libssl() -> ctypes.PyDLL | None:
    """The libssl ``_ssl`` is linked with, its functions typed; None where it
    cannot be reached (not CPython, or OpenSSL linked in and hidden). They
    are called holding the GIL (PyDLL): each is a quick getter or setter,
    and the key log callback would otherwise give the GIL up and take it
    back around every one."""
    if sys.implementation.name != "cpython":
        return None
    try:
        library = ctypes.PyDLL(ssl._ssl.__file__)  # type: ignore[attr-defined]  # no stubs
        for name, (result, arguments) in _PROTOTYPES.items():
            function = getattr(library, name)
            function.restype, function.argtypes = result, arguments
    except (OSError, AttributeError):
        return None
    return library


_LIBSSL = _load_libssl()
#: The key log callback a context had before ours, by its SSL_CTX address
#: (only those that had one: Python's, writing keylog_filename).
_previous: dict[int, Callable[[int, bytes], None]] = {}
#: Secrets no observer needs (a protected alert uses traffic keys only).
_UNUSED_SECRETS = frozenset({b"EXPORTER_SECRET", b"EARLY_EXPORTER_SECRET"})


def _on_secret(ssl_pointer: int, line: bytes) -> None:
    # Called by OpenSSL for every secret of every handshake on a context we
    # hooked: each foreign call here costs, so as few as it takes.
    assert _LIBSSL is not None  # installed only when it is there
    if _previous:
        previous = _previous.get(_LIBSSL.SSL_get_SSL_CTX(ssl_pointer))
        if previous is not None:
            previous(ssl_pointer, line)  # the operator's key log file
    label, client_random, secret = line.split()
    if label in _UNUSED_SECRETS:
        return
    connection = _by_address.get(_LIBSSL.SSL_get_ex_data(ssl_pointer, 0))
    observers = getattr(connection, _OBSERVERS, None)
    observer = observers.secrets if observers is not None else None
    if observer is None:
        return
    randoms = b""
    if label == b"CLIENT_RANDOM":  # TLS 1.2: the key block needs the server's random too
        server_random = ctypes.create_string_buffer(_RANDOM_SIZE)
        _LIBSSL.SSL_get_server_random(ssl_pointer, server_random, _RANDOM_SIZE)
        randoms = bytes.fromhex(client_random.decode("ascii")) + server_random.raw
    observer(label.decode("ascii"), bytes.fromhex(secret.decode("ascii")), randoms)


_ON_SECRET = _KeylogCallback(_on_secret)
_ON_SECRET_ADDRESS = ctypes.cast(_ON_SECRET, ctypes.c_void_p).value


def context_pointer(context: ssl.SSLContext) -> int | None:
    """The ``SSL_CTX *`` of `context`: the first field after the object
    header of ``_ssl._SSLContext``, checked against the options OpenSSL
    reports for it. None where libssl cannot be reached."""
    if _LIBSSL is None:
        return None
    address = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    if not address or _LIBSSL.SSL_CTX_get_options(address) != context.options:
        return None
    return address


def observe_secrets(context: ssl.SSLContext) -> bool:
    """Have the key log callback of `context` report each secret to the
    connection's observer too, after the callback it had (Python's, which
    writes ``keylog_filename``). Idempotent; False where it cannot be done."""
    address = context_pointer(context)
    if _LIBSSL is None or address is None:
        return False
    current = _LIBSSL.SSL_CTX_get_keylog_callback(address)
    if current != _ON_SECRET_ADDRESS:
        if current:
            _previous[address] = _KeylogCallback(current)
            weakref.finalize(context, _previous.pop, address, None)
        _LIBSSL.SSL_CTX_set_keylog_callback(address, _ON_SECRET_ADDRESS)
    return True


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


@functools.cache
def judging_context() -> ssl.SSLContext:
    """A server context that serves nothing (no certificate, the TLS 1.2
    floor): OpenSSL's verdict on bytes that are no ClientHello the host can
    read, with the alert it sends for them (none to bytes that are not TLS at
    all: it takes them for another protocol)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


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
