"""Certificate identities: a private key with its chain, and a peer's chain.

`PrivateIdentity.parse` takes a key (PEM or DER; PKCS#8, PKCS#1 or SEC1;
RSA, ECDSA or Ed25519; encrypted if a password is given) and a chain (one
certificate per element, leaf first, DER or PEM), checks them with
`cryptography` and then with OpenSSL itself, so an identity that parses is
one the host can serve. `from_files` reads a PEM chain and key from files,
`from_pkcs12` a PKCS#12 (.p12/.pfx) bundle. One password serves every
identity an operator gives, so a password is tried only on what is
encrypted. The key never leaves the host: nothing here returns it, and
`load_into` hands it to OpenSSL through an anonymous in-memory file that is
closed as soon as it is read (`load_from_memory`), so it is never written to
a disk, decrypted or not.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

#: The key types the host serves with (the TLS signature schemes below).
SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
_SIGNING_KEYS = (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)
#: What an IP entry of a subject alternative name may hold.
SanAddress = (ipaddress.IPv4Address | ipaddress.IPv6Address
             | ipaddress.IPv4Network | ipaddress.IPv6Network)

#: A password for an encrypted key or PKCS#12 file; text is taken as UTF-8.
Password = bytes | str
#: A file name as `open` takes it.
FilePath = str | os.PathLike[str]

#: Signature schemes (RFC 8446 §4.2.3) each key type can answer.
_SCHEMES = {
    "rsa": {0x0401, 0x0501, 0x0601, 0x0804, 0x0805, 0x0806, 0x0201},
    "ecdsa": {0x0403, 0x0503, 0x0603, 0x0203},
    "ed25519": {0x0807},
}


class IdentityError(ValueError):
    """A key or chain the host cannot use; the message says why."""


class IdentityPasswordError(IdentityError):
    """An encrypted key or PKCS#12 file without a password, or with one that
    does not open it."""


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
    def parse(cls, private_key: bytes, chain: Sequence[bytes], *,
              password: Password | None = None) -> PrivateIdentity:
        """An identity from a key and its chain, leaf first (see the module doc);
        `password` opens an encrypted key and is ignored for a plain one."""
        if not chain:
            raise IdentityError("the certificate chain is empty")
        certificates = [cert for index, blob in enumerate(chain)
                        for cert in _certificates(blob, index)]
        key = _signing_key(_private_key(private_key, _password_bytes(password)))
        if certificates[0].public_key() != key.public_key():
            raise IdentityError("the private key does not match the leaf certificate")
        return cls._checked(key, certificates)

    @classmethod
    def from_files(cls, cert_file: FilePath, key_file: FilePath, *,
                   password: Password | None = None) -> PrivateIdentity:
        """A PEM chain file (leaf first) and its key file, PEM or DER."""
        chain = _read(cert_file)
        return cls.parse(_read(key_file), [chain], password=password)

    @classmethod
    def from_pkcs12(cls, file: FilePath, *, password: Password | None = None) -> PrivateIdentity:
        """A PKCS#12 file holding the key, its certificate and, optionally, the
        rest of the chain; `password` opens it unless it is unencrypted."""
        blob = _read(file)
        key, certificates = _pkcs12_contents(blob, _password_bytes(password), os.fsdecode(file))
        return cls._checked(_signing_key(key), certificates)

    @classmethod
    def _checked(cls, key: SigningKey,
                 certificates: Sequence[x509.Certificate]) -> PrivateIdentity:
        identity = cls(key, certificates)
        identity.load_into(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))  # OpenSSL's own checks
        return identity

    def load_into(self, context: ssl.SSLContext) -> None:
        """Give OpenSSL the key and chain without writing them to a disk."""
        try:
            load_from_memory(self._pem, context.load_cert_chain)
        except ssl.SSLError as error:
            raise IdentityError(
                f"OpenSSL refuses the identity: {(error.reason or str(error)).lower()}"
            ) from None

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


def _signing_key(key: PrivateKeyTypes) -> SigningKey:
    if not isinstance(key, _SIGNING_KEYS):
        raise IdentityError(f"unsupported key type {type(key).__name__}: "
                            "use RSA, ECDSA or Ed25519")
    return key


def load_from_memory(data: bytes, load: Callable[[str], object]) -> None:
    """Call `load` (an ``ssl.SSLContext`` method that reads only files) with a
    path naming an anonymous in-memory file that holds `data`; the file is
    closed, and gone, as soon as `load` returns."""
    fd = os.memfd_create("wasi-tls-host", os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        load(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def _read(path: FilePath) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        raise IdentityError(f"{error.filename}: {error.strerror}") from None


def _password_bytes(password: Password | None) -> bytes | None:
    return password.encode() if isinstance(password, str) else password


def _private_key(blob: bytes, password: bytes | None) -> PrivateKeyTypes:
    loader = (serialization.load_pem_private_key if b"-----BEGIN" in blob
              else serialization.load_der_private_key)
    try:
        return loader(bytes(blob), password=None)
    except TypeError:  # encrypted: open it with the password below
        pass
    except (ValueError, UnsupportedAlgorithm) as error:
        raise IdentityError(f"the private key cannot be read: {error}") from None
    if password is None:
        raise IdentityPasswordError("the private key is encrypted and no password was given")
    try:
        return loader(bytes(blob), password=password)
    except (ValueError, UnsupportedAlgorithm):
        raise IdentityPasswordError("the password does not decrypt the private key") from None


def _pkcs12_contents(blob: bytes, password: bytes | None,
                     name: str) -> tuple[PrivateKeyTypes, list[x509.Certificate]]:
    """The key of a PKCS#12 file and its chain, the key's certificate first."""
    if blob.lstrip().startswith(b"-----BEGIN"):
        raise IdentityError(f"{name} is PEM, not PKCS#12: give NAME=CERTFILE,KEYFILE")
    contents = None
    for attempt in [None] if password is None else [None, password]:
        try:
            contents = pkcs12.load_key_and_certificates(blob, attempt)
            break
        except ValueError as error:
            if "password" not in str(error).lower():  # not a PKCS#12 structure at all
                raise IdentityError(f"{name} is not a PKCS#12 file: {error}") from None
    if contents is None:
        raise IdentityPasswordError(
            f"{name} is encrypted and no password was given" if password is None
            else f"the password does not open {name}")
    key, certificate, others = contents
    if key is None:
        raise IdentityError(f"{name} holds no private key")
    certificates = [cert for cert in (certificate, *others) if cert is not None]
    leaf = next((cert for cert in certificates if cert.public_key() == key.public_key()), None)
    if leaf is None:
        raise IdentityError(f"{name} holds no certificate for its private key")
    return key, [leaf, *(cert for cert in certificates if cert is not leaf)]


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
