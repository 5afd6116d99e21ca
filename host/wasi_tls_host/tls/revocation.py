"""Certificate revocation lists the operator gives (`--crl-file`), for checking peers.

OpenSSL checks a peer's certificate against CRLs only when the context's
store holds them and its verify flags ask for it. `RevocationLists.read`
reads the operator's PEM files once, at start-up (a CRL replaced on disk
takes effect at the next start), and refuses a file holding anything but
CRLs: OpenSSL's file loader takes certificates as well, so a certificate
slipped into a "CRL file" would otherwise become a trust anchor. `load_into`
gives a context the CRLs from memory and turns checking on.

Checking is OpenSSL's, and strict: the peer's own certificate (the leaf;
intermediates are not checked) must be covered by a current CRL from its
issuer. A revoked certificate fails with "certificate revoked"; one whose
issuer has no CRL among the files fails with "unable to get certificate
CRL", and one whose CRL is past its next update with "CRL has expired".
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .identity import load_from_memory

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.DOTALL)
_CRL_LABEL = b"X509 CRL"


@dataclass(frozen=True)
class RevocationLists:
    """The CRLs of the operator's files, as one PEM blob."""

    pem: bytes

    @classmethod
    def read(cls, paths: Sequence[str | os.PathLike[str]]) -> RevocationLists:
        """Read and check every file; ValueError with a one-line message naming
        the file when one cannot be used."""
        return cls(b"".join(_crls_of(os.fsdecode(path)) for path in paths))

    def load_into(self, context: ssl.SSLContext) -> None:
        """Check the peer's certificate of every connection made from `context`
        against these CRLs."""
        load_from_memory(self.pem, lambda path: context.load_verify_locations(cafile=path))
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF


def _crls_of(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            text = file.read()
    except OSError as error:
        raise ValueError(f"CRL file is not readable: {path}: {error.strerror or error}") from None
    blocks = list(_PEM_BLOCK.finditer(text))
    if not blocks:
        raise ValueError(f"CRL file holds no PEM CRL: {path} (convert a DER CRL with "
                         "`openssl crl -inform DER -in FILE -out FILE.pem`)")
    pem = bytearray()
    for block in blocks:
        label = block.group(1)
        if label != _CRL_LABEL:
            raise ValueError(f"CRL file holds a {label.decode()}, not only CRLs: {path}")
        try:
            crl = x509.load_pem_x509_crl(block.group(0))
        except ValueError as error:
            raise ValueError(f"CRL file has a CRL that cannot be read: {path}: {error}") from None
        pem += crl.public_bytes(serialization.Encoding.PEM)
    return bytes(pem)
