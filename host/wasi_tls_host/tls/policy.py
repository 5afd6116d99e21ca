"""The host's TLS policy: everything about TLS the operator decides and no guest can.

One `TlsPolicy` holds the trust anchors for the host's TLS clients, the
identities the operator provisions for guests (keyed by name), the trust
anchors for client certificates, the revocation lists for both, the version
floor (TLS 1.2 at least), the key log and the handshake deadline, and it
builds every ``ssl.SSLContext`` from them. Verification is always on: a
client context checks the server's chain and name, and a server that asks
for a client certificate checks it against the client CAs; with CRL files,
both also check that the peer's certificate is not revoked (see
`revocation`). Contexts are built on first use and cached per role
and per option set, because loading a trust store costs tens of
milliseconds.

For the connections a guest drives (the full draft), the guest says what it
wants (ALPN ids, identities, whether to ask for a client certificate) and
the policy decides the rest in `choose_client_context` and
`choose_server_context`: which of the guest's identities a server loads for
a ClientHello, when it asks for a client certificate, and that the guest's
clients take certificate requests after the handshake.

Problems with the operator's input (a missing CA file, an unwritable key
log) raise ``ValueError`` with a one-line message that names the file.
"""

from __future__ import annotations

import enum
import os
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # identities come from callers; importing cryptography is slow
    import ssl

    from .client_hello import ClientHello
    from .identity import PrivateIdentity
    from .revocation import RevocationLists

__all__ = ["ClientAuth", "ContextChoice", "TlsPolicy", "choose_identities"]

#: Contexts kept per role; enough for every ALPN/identity mix a guest uses.
CONTEXT_CACHE_SIZE = 64

#: TLS 1.2's protocol version on the wire, the value of ``ssl.TLSVersion.TLSv1_2``.
TLS_1_2 = 0x0303


class ClientAuth(enum.Enum):
    """Whether a server context asks for a client certificate, and when."""

    NONE = "none"
    IN_HANDSHAKE = "in-handshake"
    #: In the handshake, and a client that sends none is refused (by OpenSSL,
    #: with the alert its TLS version prescribes).
    REQUIRED = "required"
    #: Only after the handshake, on request (TLS 1.3 post-handshake authentication).
    POST_HANDSHAKE = "post-handshake"


class _VersionFloor:
    """`TlsPolicy.minimum_version`, whose default is ``ssl.TLSVersion.TLSv1_2``.

    Every `HostConfig` holds a policy, and most guest runs make no TLS
    connection: the default is held as `TLS_1_2` and turned into the
    ``ssl`` value when read, so that ``ssl`` (2 to 4 ms) is imported only
    by what builds a context or reads the floor."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, policy: TlsPolicy | None, owner: type | None = None) -> ssl.TLSVersion:
        if policy is None:  # the dataclass's default, passed back to __set__
            return TLS_1_2  # type: ignore[return-value]
        value = policy.__dict__[self._name]
        if value is TLS_1_2:
            import ssl
            return ssl.TLSVersion.TLSv1_2
        return value

    def __set__(self, policy: TlsPolicy, value: ssl.TLSVersion) -> None:
        policy.__dict__[self._name] = value


@dataclass(frozen=True)
class ContextChoice:
    """A context chosen for one connection, with what its session must know
    of it: the identities loaded into it (this side sends one of them, if
    asked) and when it asks the client for a certificate."""

    context: ssl.SSLContext
    identities: tuple[PrivateIdentity, ...] = ()
    client_auth: ClientAuth = ClientAuth.NONE


@dataclass
class TlsPolicy:
    """TLS as the operator configures it for one host (see the module doc).

    Trust anchors for clients are certifi's bundle unless CA files or the
    system store are named (or ``use_certifi`` says otherwise). CRL files
    (PEM) turn on revocation checking of servers' and clients' certificates.
    The key log (NSS format, for Wireshark) defaults to $SSLKEYLOGFILE.
    Session resumption (`resume_sessions`) is off unless asked for.
    """

    ca_files: list[str] = field(default_factory=list)
    system_trust: bool = False
    use_certifi: bool | None = None
    client_ca_files: list[str] = field(default_factory=list)
    crl_files: list[str] = field(default_factory=list)
    identities: dict[str, PrivateIdentity] = field(default_factory=dict)
    # The annotation a user reads stays the value's type, not the descriptor's.
    minimum_version: ssl.TLSVersion = _VersionFloor()  # type: ignore[assignment]
    keylog_file: str | None = field(
        default_factory=lambda: os.environ.get("SSLKEYLOGFILE") or None)
    handshake_timeout: float = 30.0
    #: Whether a guest run's TLS clients may resume a session from an earlier
    #: connection of the same run to the same server (`tls.resumption`).
    resume_sessions: bool = False
    _client_contexts: OrderedDict = field(default_factory=OrderedDict, init=False, repr=False)
    _server_contexts: OrderedDict = field(default_factory=OrderedDict, init=False, repr=False)
    _revocation: RevocationLists | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        # Read as stored: the default is TLS_1_2 itself (see _VersionFloor).
        if self.__dict__["minimum_version"] < TLS_1_2:
            raise ValueError("the TLS version floor cannot be below TLS 1.2")

    def wants_certifi(self) -> bool:
        if self.use_certifi is not None:
            return self.use_certifi
        return not self.ca_files and not self.system_trust

    def check(self) -> None:
        """Read every file the policy names now, so mistakes surface at start-up
        as ValueError; certifi's bundle and the system store are left for later."""
        if not (self.ca_files or self.client_ca_files or self.crl_files or self.keylog_file):
            return  # nothing to read, and no context to build (nor ssl to import)
        import ssl
        for path in self.ca_files:
            _load_ca_file(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), path)
        for path in self.client_ca_files:
            _load_ca_file(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), path, "client CA file")
        if self.crl_files:
            self._apply_revocation(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
        if self.keylog_file:
            _base_context(ssl.PROTOCOL_TLS_CLIENT, self)

    def _apply_revocation(self, context: ssl.SSLContext) -> None:
        """Have `context` check peers against the CRL files, if there are any;
        they are read once, the first time."""
        if not self.crl_files:
            return
        if self._revocation is None:
            from .revocation import RevocationLists  # cryptography: only when asked
            self._revocation = RevocationLists.read(self.crl_files)
        self._revocation.load_into(context)

    @staticmethod
    def alpn_ids(ids: Sequence[bytes]) -> tuple[str, ...]:
        """The ALPN ids a guest configured, as the host offers them. Python's
        ssl takes 1 to 255 ASCII bytes per id; ValueError for any other."""
        for alpn_id in ids:
            if not 1 <= len(alpn_id) <= 255 or not alpn_id.isascii():
                raise ValueError(f"an ALPN id must be 1 to 255 ASCII bytes: {alpn_id!r}")
        return tuple(alpn_id.decode("ascii") for alpn_id in ids)

    # -- clients ----------------------------------------------------------------
    def client_context(self, *, alpn_ids: Sequence[str] = (),
                       identity: PrivateIdentity | None = None,
                       post_handshake_auth: bool = False) -> ssl.SSLContext:
        """A context for the host's TLS clients: CERT_REQUIRED, host names
        checked, the floor applied; optionally offering ALPN ids, presenting
        a client certificate, and accepting post-handshake requests."""
        key = (tuple(alpn_ids), identity, post_handshake_auth)
        return _cached(self._client_contexts, key, lambda: self._new_client_context(*key))

    def _new_client_context(self, alpn_ids: tuple[str, ...], identity: PrivateIdentity | None,
                            post_handshake_auth: bool) -> ssl.SSLContext:
        import ssl
        context = _base_context(ssl.PROTOCOL_TLS_CLIENT, self)
        context.verify_mode = ssl.CERT_REQUIRED
        context.check_hostname = True
        for path in self.ca_files:
            _load_ca_file(context, path)
        if self.system_trust:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        if self.wants_certifi():
            import certifi
            _load_ca_file(context, certifi.where())
        self._apply_revocation(context)
        if alpn_ids:
            context.set_alpn_protocols(list(alpn_ids))
        if identity is not None:
            identity.load_into(context)
        context.post_handshake_auth = post_handshake_auth
        return context

    def choose_client_context(self, *, alpn_ids: Sequence[str] = (),
                              identity: PrivateIdentity | None = None) -> ContextChoice:
        """The context of a client whose guest drives the handshake: it offers
        `alpn_ids`, presents `identity` once the guest has chosen one, and
        takes certificate requests after the handshake (TLS 1.3), which
        OpenSSL answers with the identity the context holds, if any."""
        context = self.client_context(alpn_ids=alpn_ids, identity=identity,
                                      post_handshake_auth=True)
        return ContextChoice(context, (identity,) if identity is not None else ())

    # -- servers ----------------------------------------------------------------
    def server_context(self, identities: Sequence[PrivateIdentity], *,
                       alpn_ids: Sequence[str] = (),
                       client_auth: ClientAuth = ClientAuth.NONE) -> ssl.SSLContext:
        """A context serving `identities` (at most one per key type; OpenSSL
        picks by the client's signature algorithms), selecting among
        `alpn_ids` in that order of preference, and asking for a client
        certificate as `client_auth` says, verified against the client CAs."""
        key = (tuple(identities), tuple(alpn_ids), client_auth)
        return _cached(self._server_contexts, key, lambda: self._new_server_context(*key))

    def choose_server_context(self, hello: ClientHello | None,
                              identities: Sequence[PrivateIdentity], *,
                              alpn_ids: Sequence[str] = (),
                              request_client_identity: bool = False,
                              require_client_identity: bool = False) -> ContextChoice:
        """The context of a server whose guest offers `identities` and
        `alpn_ids`, for the client that sent `hello` (None when it could not
        be read). It asks for a client certificate in the handshake if the
        guest takes that step (`request_client_identity`), else after the
        handshake if the client offers post-handshake authentication under
        TLS 1.3, else never; `choose_identities` picks what it serves. With
        `require_client_identity` (a host's own server, `serve`), a client
        without a certificate is refused in the handshake."""
        import ssl
        if require_client_identity:
            client_auth = ClientAuth.REQUIRED
        elif request_client_identity:
            client_auth = ClientAuth.IN_HANDSHAKE
        elif (hello is not None and ssl.TLSVersion.TLSv1_3 in hello.versions
              and hello.post_handshake_auth):
            client_auth = ClientAuth.POST_HANDSHAKE
        else:
            client_auth = ClientAuth.NONE
        chosen = choose_identities(identities, hello.server_name if hello else None,
                                   hello.signature_algorithms if hello else ())
        context = self.server_context(chosen, alpn_ids=alpn_ids, client_auth=client_auth)
        return ContextChoice(context, tuple(chosen), client_auth)

    def _new_server_context(self, identities: tuple[PrivateIdentity, ...],
                            alpn_ids: tuple[str, ...], client_auth: ClientAuth) -> ssl.SSLContext:
        import ssl
        context = _base_context(ssl.PROTOCOL_TLS_SERVER, self)
        for identity in identities:
            identity.load_into(context)
        if alpn_ids:
            context.set_alpn_protocols(list(alpn_ids))
        if client_auth is not ClientAuth.NONE:
            context.verify_mode = (ssl.CERT_REQUIRED if client_auth is ClientAuth.REQUIRED
                                   else ssl.CERT_OPTIONAL)
            for path in self.client_ca_files:
                _load_ca_file(context, path, "client CA file")
            self._apply_revocation(context)
            context.post_handshake_auth = client_auth is ClientAuth.POST_HANDSHAKE
        return context


def choose_identities(identities: Sequence[PrivateIdentity], server_name: str | None,
                      signature_algorithms: Sequence[int]) -> list[PrivateIdentity]:
    """What a server loads for one handshake, in the guest's order of preference.

    Identities naming the server name the client asked for win, if one of
    them can sign in a way the client accepts; otherwise all of them are
    candidates. Of the candidates, the first of each key type is loaded, so
    that OpenSSL can still pick between an RSA and an ECDSA certificate by
    the client's signature algorithms.
    """
    usable = [i for i in identities if i.answers(signature_algorithms)] or list(identities)
    named = [i for i in usable if i.serves(server_name)]
    chosen: dict[str, PrivateIdentity] = {}
    for identity in named or usable:
        chosen.setdefault(identity.key_type, identity)
    return list(chosen.values())


#: Guards the context caches: a server (`serve`) handshakes on many threads
#: with one policy.
_CACHE_LOCK = threading.Lock()


def _cached(cache: OrderedDict, key: Hashable, build) -> ssl.SSLContext:
    with _CACHE_LOCK:
        context = cache.get(key)
        if context is None:
            context = cache[key] = build()
            if len(cache) > CONTEXT_CACHE_SIZE:
                cache.popitem(last=False)
        else:
            cache.move_to_end(key)
        return context


def _base_context(protocol: int, policy: TlsPolicy) -> ssl.SSLContext:
    import ssl
    context = ssl.SSLContext(protocol)
    context.minimum_version = policy.minimum_version
    # With this option OpenSSL reports a truncated stream as a clean EOF;
    # the core must see truncation to report it.
    flag = getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    context.options &= ~flag
    # No renegotiation either way (TLS 1.2): OpenSSL 3 already refuses a
    # client's by default, but a client would follow a server's HelloRequest,
    # and an OpenSSL 1.1.1 server would take a client's.
    context.options |= ssl.OP_NO_RENEGOTIATION
    if policy.keylog_file:
        try:
            context.keylog_filename = policy.keylog_file
        except OSError as exc:
            raise ValueError(f"key log file cannot be opened: {policy.keylog_file}: "
                             f"{exc.strerror or exc}") from None
    return context


def _load_ca_file(context: ssl.SSLContext, path: str, what: str = "CA file") -> None:
    import ssl

    from .errors import humanize
    if not os.path.exists(path):
        raise ValueError(f"{what} not found: {path}")
    if os.path.isdir(path):
        raise ValueError(f"{what} is a directory, not a file: {path}")
    try:
        context.load_verify_locations(cafile=path)
    except ssl.SSLError as exc:
        detail = humanize(exc.reason) if exc.reason else str(exc)
        raise ValueError(f"{what} has no usable PEM certificates: {path} ({detail})") from None
    except OSError as exc:
        raise ValueError(f"{what} is not readable: {path}: {exc.strerror or exc}") from None
