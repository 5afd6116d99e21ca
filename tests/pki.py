"""The tests' certificates: the conformance kit's PKI
(wasi_tls_host.conformance.pki), with the host's own views of it added, which
the kit must not use (it shares no code with the host it judges), and the
authorities' revocation lists.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from wasi_tls_host.conformance.pki import TLS_VERSIONS, Authority, Leaf  # noqa: F401
from wasi_tls_host.conformance.pki import Pki as SuitePki
from wasi_tls_host.tls import PrivateIdentity, TlsPolicy


class Pki(SuitePki):
    _crls = 0

    def crl_file(self, *revoked: Leaf, ca: Authority | None = None,
                 expired: bool = False) -> Path:
        """A PEM CRL from `ca` (the trusted CA by default) revoking `revoked`;
        past its next update if `expired`."""
        ca = ca or self.ca
        now = datetime.datetime.now(datetime.UTC)
        last = now - datetime.timedelta(days=2 if expired else 0, minutes=1)
        builder = (x509.CertificateRevocationListBuilder().issuer_name(ca.name)
                   .last_update(last).next_update(last + datetime.timedelta(days=1)))
        for leaf in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(leaf.chain[0].serial_number)
                .revocation_date(last).build())
        self._crls += 1
        path = self.directory / f"crl-{self._crls}.pem"
        path.write_bytes(builder.sign(ca.key, hashes.SHA256()).public_bytes(
            serialization.Encoding.PEM))
        return path

    def identity(self, *names: str, key_type: str = "ecdsa",
                 trusted: bool = True) -> PrivateIdentity:
        """A new leaf as the host's identity."""
        leaf = self.leaf(*names, key_type=key_type, trusted=trusted)
        return PrivateIdentity.parse(leaf.private_key_pem.bytes(),
                                     [blob.bytes() for blob in leaf.cert_chain_pems])

    def policy(self, **settings) -> TlsPolicy:
        """The host's policy trusting `ca`, for servers and for client certificates."""
        return TlsPolicy(ca_files=[str(self.ca_file)], client_ca_files=[str(self.ca_file)],
                         **settings)


def der_chain(leaf: Leaf) -> tuple[bytes, ...]:
    """The leaf's chain as DER, leaf first, as `export-X509-chain` returns it."""
    return leaf.chain_der()
