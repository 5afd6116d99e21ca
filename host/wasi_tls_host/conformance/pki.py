"""Certificates made at run time with `cryptography`, for the conformance
suite and the project's tests alike, and the Python `ssl` contexts that
present and trust them.

Two authorities: `ca`, the one the host under test is told to trust
(`--ca-file`, and `--client-ca` for client certificates), and
`untrusted_ca`, one it is never told about. `Pki.leaf` issues a leaf on
demand; the suite's leaves have labels (`pki["localhost"]`) and are issued
on first use:

| leaf | what it is |
| --- | --- |
| localhost | the good server: localhost and 127.0.0.1, from the trusted CA |
| other-name | from the trusted CA, for other.example only (a wrong name) |
| expired / not-yet-valid | localhost, from the trusted CA, outside its validity |
| self-signed | localhost, signed by its own key |
| unknown-ca | localhost, from the CA the host is not told about |
| inner | inner.test, for the TLS connection inside a TLS connection |
| alt | alt.example, the second identity a server chooses by SNI |
| rsa / ed25519 | localhost with an RSA or Ed25519 key, for the key formats |
| client / stranger-client | client certificates from the trusted and the unknown CA |

Every leaf is also written as PEM files (`cert_file`, `key_file`) for peers
such as `openssl s_server` and for the host's options. A leaf and an
authority also answer the calls of trustme's objects that tests make:
`cert_chain_pems`, `private_key_pem` and `configure_cert(context)` on a
leaf, `cert_pem` and `configure_trust(context)` on an authority.

`TLS_VERSIONS` is the one table of the versions every TLS case and test
runs under.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: The TLS versions every TLS case and test runs under, by the names they use.
TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}

DAY = datetime.timedelta(days=1)
SERVER = (ExtendedKeyUsageOID.SERVER_AUTH,)
CLIENT = (ExtendedKeyUsageOID.CLIENT_AUTH,)
LOCAL = ("localhost", "127.0.0.1")
#: Each suite leaf's names and `Pki.leaf` options, by label (see the module doc).
SUITE_LEAVES: dict[str, tuple[tuple[str, ...], dict]] = {
    "localhost": (LOCAL, {"usage": SERVER}),
    "other-name": (("other.example",), {"usage": SERVER}),
    "expired": (LOCAL, {"usage": SERVER, "expired": True}),
    "not-yet-valid": (LOCAL, {"usage": SERVER, "not_yet_valid": True}),
    "self-signed": (LOCAL, {"usage": SERVER, "self_signed": True}),
    "unknown-ca": (LOCAL, {"usage": SERVER, "trusted": False}),
    "inner": (("inner.test",), {"usage": SERVER}),
    "alt": (("alt.example",), {"usage": SERVER}),
    "rsa": (LOCAL, {"usage": SERVER, "key_type": "rsa"}),
    "ed25519": (LOCAL, {"usage": SERVER, "key_type": "ed25519"}),
    "client": (("conformance client",), {"usage": CLIENT}),
    "stranger-client": (("stranger client",), {"usage": CLIENT, "trusted": False}),
}
_NEW_KEY: dict[str, Callable[[], CertificateIssuerPrivateKeyTypes]] = {
    "ecdsa": lambda: ec.generate_private_key(ec.SECP256R1()),
    "rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
}


@dataclass(frozen=True)
class Pem:
    """PEM text of a certificate or a key."""

    data: bytes

    def bytes(self) -> bytes:
        return self.data


@dataclass(frozen=True)
class Leaf:
    label: str
    key: CertificateIssuerPrivateKeyTypes
    chain: tuple[x509.Certificate, ...]  # leaf first
    cert_file: Path  # the chain as PEM
    key_file: Path  # the key as PKCS#8 PEM

    def chain_der(self) -> tuple[bytes, ...]:
        """The chain as DER, leaf first, as `export-X509-chain` returns it."""
        return tuple(cert.public_bytes(serialization.Encoding.DER) for cert in self.chain)

    @property
    def cert_chain_pems(self) -> tuple[Pem, ...]:
        return tuple(Pem(cert.public_bytes(serialization.Encoding.PEM)) for cert in self.chain)

    @property
    def private_key_pem(self) -> Pem:
        return Pem(self.key_file.read_bytes())

    def configure_cert(self, context: ssl.SSLContext) -> None:
        """Make `context` present this leaf."""
        context.load_cert_chain(self.cert_file, self.key_file)


@dataclass(frozen=True)
class Authority:
    name: x509.Name
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    file: Path  # the certificate as PEM

    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def cert_pem(self) -> Pem:
        return Pem(self.cert.public_bytes(serialization.Encoding.PEM))

    def configure_trust(self, context: ssl.SSLContext) -> None:
        """Make `context` trust this authority."""
        context.load_verify_locations(self.file)


class Pki:
    """The two authorities, and leaves issued under `directory`."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.now = datetime.datetime.now(datetime.UTC)
        self.ca = self._authority("wasi-tls-host test CA", "ca.pem")
        self.untrusted_ca = self._authority("wasi-tls-host stranger CA", "untrusted-ca.pem")
        self.ca_file = self.ca.file
        self.untrusted_ca_file = self.untrusted_ca.file
        self._labelled: dict[str, Leaf] = {}
        self._unlabelled = 0
        # The runner starts the peers of cases that run together on their own
        # threads: each leaf is issued once, and no two threads write one file.
        self._issuing = threading.Lock()

    def __getitem__(self, label: str) -> Leaf:
        """The suite leaf `label` (see the module doc), issued on first use."""
        with self._issuing:
            if label not in self._labelled:
                names, options = SUITE_LEAVES[label]
                self._labelled[label] = self.leaf(*names, label=label, **options)
            return self._labelled[label]

    def leaf(self, *names: str, key_type: str = "ecdsa", trusted: bool = True,
             self_signed: bool = False, expired: bool = False, not_yet_valid: bool = False,
             usage: tuple[x509.ObjectIdentifier, ...] = SERVER + CLIENT,
             label: str | None = None) -> Leaf:
        """A new leaf for `names` (host names, IP addresses; a name with a space
        is only the subject), good for servers and clients unless `usage`
        says otherwise, written as `LABEL.pem` and `LABEL.key`."""
        if label is None:
            with self._issuing:
                self._unlabelled += 1
                label = f"leaf-{self._unlabelled}"
        key = _NEW_KEY[key_type]()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
        start, end = -1, 30
        if expired:
            start, end = -30, -1
        elif not_yet_valid:
            start, end = 1, 30
        issuer = None if self_signed else self.ca if trusted else self.untrusted_ca
        builder = (x509.CertificateBuilder()
                   .subject_name(subject)
                   .issuer_name(issuer.name if issuer else subject)
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(self.now + start * DAY)
                   .not_valid_after(self.now + end * DAY)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True)
                   .add_extension(x509.ExtendedKeyUsage(list(usage)), critical=False))
        if alternative_names := [_general_name(name) for name in names if " " not in name]:
            builder = builder.add_extension(x509.SubjectAlternativeName(alternative_names),
                                            critical=False)
        if issuer is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                critical=False)
        # An Ed25519 key signs without a separate digest.
        algorithm = None if key_type == "ed25519" and issuer is None else hashes.SHA256()
        cert = builder.sign(issuer.key if issuer else key, algorithm)
        cert_file = self.directory / f"{label}.pem"
        key_file = self.directory / f"{label}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return Leaf(label, key, (cert,), cert_file, key_file)

    def server_context(self, leaf: Leaf, version: str | None = None, *, legacy: bool = False,
                       client_auth: ssl.VerifyMode = ssl.CERT_NONE) -> ssl.SSLContext:
        """A Python ssl server (a peer) presenting `leaf`, pinned to `version`
        if given; with `client_auth`, it asks for a client certificate from `ca`.

        A truncation stays visible (OP_IGNORE_UNEXPECTED_EOF off). `legacy`
        serves only TLS 1.0 and 1.1, at security level 0 because OpenSSL
        refuses them at its default level ("no ciphers available").
        """
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
        leaf.configure_cert(context)
        if legacy:
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
        elif version is not None:
            context.minimum_version = context.maximum_version = TLS_VERSIONS[version]
        if client_auth != ssl.CERT_NONE:
            context.verify_mode = client_auth
            self.ca.configure_trust(context)
        return context

    def client_context(self, version: str | None = None,
                       leaf: Leaf | None = None) -> ssl.SSLContext:
        """A Python ssl client (a peer) trusting `ca`, pinned to `version` if
        given, presenting `leaf` if given (also after the handshake). A
        truncation stays visible."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
        self.ca.configure_trust(context)
        if version is not None:
            context.minimum_version = context.maximum_version = TLS_VERSIONS[version]
        if leaf is not None:
            leaf.configure_cert(context)
            context.post_handshake_auth = True
        return context

    def value(self, spec: str) -> str:
        """A guest argument made from the PKI (the runner's `{pki:...}` placeholders):

        * `sha256:LABEL`: the SHA-256 digests of the leaf's chain, comma-separated;
        * `material:LABEL:FORMAT`: a key and chain in base64 as "KEY:CERT,CERT", the
          key as `pkcs8` or `traditional` (PKCS#1 for RSA, SEC1 for ECDSA), the
          whole in `pem` or `der` (FORMAT is e.g. `pkcs8-der`). LABEL `mismatched`
          is alt's key with localhost's chain; `garbage` is random bytes.
        """
        kind, _, rest = spec.partition(":")
        if kind == "sha256":
            return ",".join(hashlib.sha256(der).hexdigest() for der in self[rest].chain_der())
        if kind != "material":
            raise KeyError(spec)
        label, _, form = rest.partition(":")
        if label == "garbage":
            key, chain = os.urandom(300), [os.urandom(600)]
        else:
            key_leaf, chain_leaf = ((self["alt"], self["localhost"]) if label == "mismatched"
                                    else (self[label], self[label]))
            key_format, _, encoding = form.partition("-")
            key, chain = _encode(key_leaf.key, chain_leaf.chain, key_format, encoding)
        return (base64.b64encode(key).decode() + ":"
                + ",".join(base64.b64encode(cert).decode() for cert in chain))

    def _authority(self, common_name: str, file_name: str) -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        cert = (x509.CertificateBuilder()
                .subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(self.now - DAY).not_valid_after(self.now + 30 * DAY)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(
                    digital_signature=True, key_cert_sign=True, crl_sign=True,
                    content_commitment=False, key_encipherment=False, data_encipherment=False,
                    key_agreement=False, encipher_only=False, decipher_only=False),
                    critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False)
                .sign(key, hashes.SHA256()))
        file = self.directory / file_name
        file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return Authority(name, key, cert, file)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _encode(key, chain, key_format: str, encoding: str) -> tuple[bytes, list[bytes]]:
    serialized = {"pem": serialization.Encoding.PEM, "der": serialization.Encoding.DER}[encoding]
    private_format = {"pkcs8": serialization.PrivateFormat.PKCS8,
                      "traditional": serialization.PrivateFormat.TraditionalOpenSSL}[key_format]
    return (key.private_bytes(serialized, private_format, serialization.NoEncryption()),
            [cert.public_bytes(serialized) for cert in chain])
