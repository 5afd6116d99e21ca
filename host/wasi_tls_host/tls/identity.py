"""Certificate identities: a private key with its chain, and a peer's chain.

`PrivateIdentity.parse` takes a key (PEM or DER; PKCS#8, PKCS#1 or SEC1;
RSA, ECDSA or Ed25519) and a chain (one certificate per element, leaf first,
DER or PEM), checks them with `cryptography` and then with OpenSSL itself, so
an identity that parses is one the host can serve. The key never leaves the
host: nothing here returns it, and `load_into` hands it to OpenSSL through an
anonymous in-memory file that is closed as soon as it is read, so it is never
written to a disk.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

#: The key types the host serves with (the TLS signature schemes below).
SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
_SIGNING_KEYS = (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)
#: What an IP entry of a subject alternative name may hold.
SanAddress = (ipaddress.IPv4Address | ipaddress.IPv6Address
             | ipaddress.IPv4Network | ipaddress.IPv6Network)

#: Signature schemes (RFC 8446 §4.2.3) each key type can answer.
_SCHEMES = {
    "rsa": {0x0401, 0x0501, 0x0601, 0x0804, 0x0805, 0x0806, 0x0201},
    "ecdsa": {0x0403, 0x0503, 0x0603, 0x0203},
    "ed25519": {0x0807},
}


class IdentityError(ValueError):
    """A key or chain the host cannot use; the message says why."""


@dataclass(frozen=True)
class PublicIdentity:
    """A certificate chain, leaf first, each certificate in DER."""

    chain: tuple[bytes, ...]


class PrivateIdentity:
    """A private key and its certificate chain, ready to load into OpenSSL."""

    def __init__(self, key: SigningKey, chain: Sequence[x509.Certificate]):
        self._pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()) + b"".join(
            cert.public_bytes(serialization.Encoding.PEM) for cert in chain)
        self.public = PublicIdentity(tuple(
            cert.public_bytes(serialization.Encoding.DER) for cert in chain))
        self.key_type = _key_type(key)
        self._dns_names, self._addresses = _subject_names(chain[0])

    @classmethod
    def parse(cls, private_key: bytes, chain: Sequence[bytes]) -> PrivateIdentity:
        if not chain:
            raise IdentityError("the certificate chain is empty")
        certificates = [cert for index, blob in enumerate(chain)
                        for cert in _certificates(blob, index)]
        key = _private_key(private_key)
        if not isinstance(key, _SIGNING_KEYS):
            raise IdentityError(f"unsupported key type {type(key).__name__}: "
                                "use RSA, ECDSA or Ed25519")
        if certificates[0].public_key() != key.public_key():
            raise IdentityError("the private key does not match the leaf certificate")
        identity = cls(key, certificates)
        identity.load_into(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))  # OpenSSL's own checks
        return identity

    @classmethod
    def from_files(cls, cert_file: str, key_file: str) -> PrivateIdentity:
        """For the operator's `--identity`: a PEM chain file and a key file."""
        try:
            with open(cert_file, "rb") as file:
                chain = file.read()
            with open(key_file, "rb") as file:
                key = file.read()
        except OSError as error:
            raise IdentityError(f"{error.filename}: {error.strerror}") from None
        return cls.parse(key, [chain])

    def load_into(self, context: ssl.SSLContext) -> None:
        """Give OpenSSL the key and chain without writing them to a disk."""
        fd = os.memfd_create("wasi-tls-host-identity", os.MFD_CLOEXEC)
        try:
            os.write(fd, self._pem)
            context.load_cert_chain(f"/proc/self/fd/{fd}")
        except ssl.SSLError as error:
            raise IdentityError(
                f"OpenSSL refuses the identity: {(error.reason or str(error)).lower()}"
            ) from None
        finally:
            os.close(fd)

    def serves(self, server_name: str | None) -> bool:
        """Whether the leaf certificate names `server_name` (SAN, one-label wildcards)."""
        if server_name is None:
            return False
        wanted = server_name.rstrip(".").lower()
        try:
            address = ipaddress.ip_address(wanted)
        except ValueError:
            return any(name == wanted or (name.startswith("*.") and "." in wanted
                                          and wanted.split(".", 1)[1] == name[2:])
                       for name in self._dns_names)
        return address in self._addresses

    def answers(self, signature_algorithms: Sequence[int]) -> bool:
        """Whether the key can sign with one of the client's schemes (all if it sent none)."""
        return not signature_algorithms or bool(
            _SCHEMES[self.key_type].intersection(signature_algorithms))


def _key_type(key: SigningKey) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return "rsa"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ecdsa"
    return "ed25519"


def _private_key(blob: bytes) -> PrivateKeyTypes:
    loader = (serialization.load_pem_private_key if b"-----BEGIN" in blob
              else serialization.load_der_private_key)
    try:
        return loader(bytes(blob), password=None)
    except TypeError:
        raise IdentityError("the private key is encrypted; give it unencrypted") from None
    except (ValueError, UnsupportedAlgorithm) as error:
        raise IdentityError(f"the private key cannot be read: {error}") from None


def _certificates(blob: bytes, index: int) -> list[x509.Certificate]:
    try:
        if b"-----BEGIN" in blob:
            certificates = x509.load_pem_x509_certificates(bytes(blob))
        else:
            certificates = [x509.load_der_x509_certificate(bytes(blob))]
    except ValueError as error:
        raise IdentityError(f"certificate {index} of the chain cannot be read: {error}") from None
    return certificates


def _subject_names(leaf: x509.Certificate) -> tuple[list[str], list[SanAddress]]:
    """The leaf's DNS names (lower case) and IP addresses from its SAN."""
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return ([name.lower() for name in names.get_values_for_type(x509.DNSName)],
            names.get_values_for_type(x509.IPAddress))
