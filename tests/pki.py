"""The tests' certificates, made at run time by trustme: one place for every test file.

`Pki` holds a CA the host trusts (for servers and for client certificates),
a second CA it does not, and issues leaves on demand as trustme objects,
as PEM files for peers such as `openssl s_server`, or as host identities;
and it writes the CA's revocation lists.
"""

from __future__ import annotations

import datetime
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from wasi_tls_host.tls import PrivateIdentity, TlsPolicy

KEY_TYPES = {"rsa": trustme.KeyType.RSA, "ecdsa": trustme.KeyType.ECDSA}


@dataclass
class LeafFiles:
    cert: Path  # the chain, leaf first
    key: Path


@dataclass
class Pki:
    directory: Path
    ca: trustme.CA = field(default_factory=trustme.CA)
    untrusted_ca: trustme.CA = field(default_factory=trustme.CA)

    def __post_init__(self) -> None:
        self.ca_file = self.directory / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.untrusted_ca_file = self.directory / "untrusted-ca.pem"
        self.untrusted_ca.cert_pem.write_to_path(str(self.untrusted_ca_file))
        self._count = 0

    def leaf(self, *names: str, key_type: str = "ecdsa", trusted: bool = True,
             expired: bool = False) -> trustme.LeafCert:
        ca = self.ca if trusted else self.untrusted_ca
        when = {}
        if expired:
            now = datetime.datetime.now(datetime.UTC)
            when = {"not_before": now - datetime.timedelta(days=30),
                    "not_after": now - datetime.timedelta(days=1)}
        return ca.issue_cert(*names, key_type=KEY_TYPES[key_type], **when)

    def files(self, leaf: trustme.LeafCert) -> LeafFiles:
        self._count += 1
        cert = self.directory / f"leaf-{self._count}.pem"
        key = self.directory / f"leaf-{self._count}.key"
        for index, blob in enumerate(leaf.cert_chain_pems):
            blob.write_to_path(str(cert), append=index > 0)
        leaf.private_key_pem.write_to_path(str(key))
        return LeafFiles(cert, key)

    def crl_file(self, *revoked: trustme.LeafCert, ca: trustme.CA | None = None,
                 expired: bool = False) -> Path:
        """A PEM CRL from `ca` (the trusted CA by default) revoking `revoked`;
        past its next update if `expired`."""
        ca = ca or self.ca
        issuer = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
        now = datetime.datetime.now(datetime.UTC)
        last = now - datetime.timedelta(days=2 if expired else 0, minutes=1)
        builder = (x509.CertificateRevocationListBuilder().issuer_name(issuer.subject)
                   .last_update(last).next_update(last + datetime.timedelta(days=1)))
        for leaf in revoked:
            serial = x509.load_pem_x509_certificate(
                leaf.cert_chain_pems[0].bytes()).serial_number
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(last)
                .build())
        key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
        self._count += 1
        path = self.directory / f"crl-{self._count}.pem"
        path.write_bytes(builder.sign(key, hashes.SHA256()).public_bytes(
            serialization.Encoding.PEM))
        return path

    def identity(self, *names: str, key_type: str = "ecdsa",
                 trusted: bool = True) -> PrivateIdentity:
        leaf = self.leaf(*names, key_type=key_type, trusted=trusted)
        return PrivateIdentity.parse(leaf.private_key_pem.bytes(),
                                     [blob.bytes() for blob in leaf.cert_chain_pems])

    def policy(self, **settings) -> TlsPolicy:
        """The host's policy trusting this CA, for servers and for client certificates."""
        return TlsPolicy(ca_files=[str(self.ca_file)], client_ca_files=[str(self.ca_file)],
                         **settings)

    def server_context(self, leaf: trustme.LeafCert, version: str | None = None,
                       *, client_auth: ssl.VerifyMode = ssl.CERT_NONE) -> ssl.SSLContext:
        """A Python ssl server context (a test peer), pinned to "1.2"/"1.3" if given."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        leaf.configure_cert(context)
        if version is not None:
            context.minimum_version = context.maximum_version = TLS_VERSIONS[version]
        if client_auth != ssl.CERT_NONE:
            context.verify_mode = client_auth
            self.ca.configure_trust(context)
        return context

    def client_context(self, version: str | None = None,
                       leaf: trustme.LeafCert | None = None) -> ssl.SSLContext:
        """A Python ssl client context (a test peer) trusting this CA."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ca.configure_trust(context)
        if version is not None:
            context.maximum_version = TLS_VERSIONS[version]
        if leaf is not None:
            leaf.configure_cert(context)
        return context


TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def der_chain(leaf: trustme.LeafCert) -> tuple[bytes, ...]:
    """The leaf's chain as DER, leaf first, as `export-X509-chain` returns it."""
    return tuple(ssl.PEM_cert_to_DER_cert(blob.bytes().decode())
                 for blob in leaf.cert_chain_pems)
