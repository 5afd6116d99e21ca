"""Host-owned TLS configuration: which certificates the host trusts.

The guest never supplies trust anchors or verification switches; the host
operator does, through :class:`TrustPolicy`, and :func:`client_context` turns
that into an ``ssl.SSLContext`` that always verifies the peer's chain and
host name with TLS 1.2 as the floor.  Problems with the operator's input
(a missing or malformed CA file, an unwritable key log) raise ``ValueError``
with a one-line message that names the file, ready for the CLI to print.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass

__all__ = ["TrustPolicy", "client_context", "server_context"]


@dataclass(frozen=True)
class TrustPolicy:
    """Which trust anchors the host's TLS clients use.

    Attributes:
        ca_files: extra PEM files of trusted CA certificates.  When given,
            they replace the certifi bundle (unless ``use_certifi`` is True).
        system_trust: also trust the operating system's default store.
        use_certifi: trust the certifi (Mozilla) bundle.  ``None`` means
            "only when neither ``ca_files`` nor ``system_trust`` is set".
        keylog_file: append session secrets in NSS key log format to this
            file (for Wireshark).  Debugging only.
    """

    ca_files: tuple[str, ...] = ()
    system_trust: bool = False
    use_certifi: bool | None = None
    keylog_file: str | None = None

    def wants_certifi(self) -> bool:
        if self.use_certifi is not None:
            return self.use_certifi
        return not self.ca_files and not self.system_trust


def _check_readable_file(path: str, what: str) -> None:
    if not os.path.exists(path):
        raise ValueError(f"{what} not found: {path}")
    if os.path.isdir(path):
        raise ValueError(f"{what} is a directory, not a file: {path}")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ValueError(f"{what} is not readable: {path}: {exc.strerror or exc}") from None


def _load_ca_file(ctx: ssl.SSLContext, path: str) -> None:
    _check_readable_file(path, "CA file")
    try:
        ctx.load_verify_locations(cafile=path)
    except ssl.SSLError as exc:
        detail = exc.reason.lower().replace("_", " ") if exc.reason else str(exc)
        raise ValueError(f"CA file has no usable PEM certificates: {path} ({detail})") from None
    except OSError as exc:  # raced with the check above
        raise ValueError(f"CA file is not readable: {path}: {exc.strerror or exc}") from None


def _clear_ignore_unexpected_eof(ctx: ssl.SSLContext) -> None:
    # With this option OpenSSL reports a truncated stream as a clean EOF;
    # the core must see truncation to report it.
    flag = getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    if flag and ctx.options & flag:
        ctx.options &= ~flag


def client_context(
    policy: TrustPolicy, *, alpn_protocols: tuple[str, ...] | list[str] = ()
) -> ssl.SSLContext:
    """Build the ``SSLContext`` the host's TLS clients use.

    Verification is always on (``CERT_REQUIRED`` and ``check_hostname``);
    TLS 1.2 is the minimum; cipher suites are the ``ssl`` module defaults.
    The server name (SNI and the name checked) is given per connection by
    :class:`~wasi_tls_host.tls.core.TLSConnection`.  ``alpn_protocols`` is an
    optional list offered by every connection made from this context.

    The context is safe to share between connections as long as nobody
    mutates it afterwards.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = True
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    _clear_ignore_unexpected_eof(ctx)

    for path in policy.ca_files:
        _load_ca_file(ctx, path)
    if policy.system_trust:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if policy.wants_certifi():
        import certifi

        _load_ca_file(ctx, certifi.where())

    if alpn_protocols:
        ctx.set_alpn_protocols(list(alpn_protocols))

    if policy.keylog_file:
        try:
            ctx.keylog_filename = policy.keylog_file
        except OSError as exc:
            raise ValueError(
                f"key log file cannot be opened: {policy.keylog_file}: {exc.strerror or exc}"
            ) from None
    return ctx


def server_context(
    certfile: str,
    keyfile: str | None = None,
    *,
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
    max_version: ssl.TLSVersion | None = None,
) -> ssl.SSLContext:
    """Build a server ``SSLContext`` from a PEM certificate chain and key.

    Used by the tests and by future server support.  If ``min_version`` is
    below TLS 1.2 the OpenSSL security level is lowered to 0, because at the
    default level OpenSSL refuses to negotiate TLS 1.0/1.1 at all ("no
    ciphers available"); that is only useful for testing legacy peers.
    """
    _check_readable_file(certfile, "certificate file")
    if keyfile is not None:
        _check_readable_file(keyfile, "key file")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _clear_ignore_unexpected_eof(ctx)
    try:
        ctx.load_cert_chain(certfile, keyfile)
    except (ssl.SSLError, OSError) as exc:
        names = certfile if keyfile is None else f"{certfile} / {keyfile}"
        reason = getattr(exc, "reason", None)
        detail = reason.lower().replace("_", " ") if reason else str(exc)
        raise ValueError(f"cannot load certificate/key: {names} ({detail})") from None
    if min_version < ssl.TLSVersion.TLSv1_2:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx
