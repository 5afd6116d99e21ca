"""The tests' certificates: the conformance kit's PKI
(wasi_tls_host.conformance.pki), with the host's own views of it added, which
the kit must not use (it shares no code with the host it judges).
"""

from __future__ import annotations

from wasi_tls_host.conformance.pki import TLS_VERSIONS, Leaf  # noqa: F401 - for the tests
from wasi_tls_host.conformance.pki import Pki as SuitePki
from wasi_tls_host.tls import PrivateIdentity, TlsPolicy


class Pki(SuitePki):
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
