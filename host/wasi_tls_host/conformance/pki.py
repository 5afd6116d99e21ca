"""The suite's certificates, made at run time with `cryptography`.

One CA the host under test is told to trust (`--ca-file`, and `--client-ca`
for client certificates), one it is never told about, and a leaf per
purpose, each written as PEM files for the peers and the host's options:

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
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Leaf:
    label: str
    key: object  # a cryptography private key
    chain: tuple[x509.Certificate, ...]  # leaf first
    cert_file: Path  # the chain as PEM
    key_file: Path  # the key as PKCS#8 PEM

    def chain_der(self) -> list[bytes]:
        return [cert.public_bytes(serialization.Encoding.DER) for cert in self.chain]


@dataclass(frozen=True)
class _Authority:
    name: x509.Name
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


class Pki:
    """Every leaf of the table in the module doc, written under `directory`."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.now = datetime.datetime.now(datetime.UTC)
        self.ca = self._authority("wasi-tls conformance CA")
        self.unknown_ca = self._authority("wasi-tls conformance stranger CA")
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(self.ca.cert.public_bytes(serialization.Encoding.PEM))
        server = [x509.ExtendedKeyUsageOID.SERVER_AUTH]
        client = [ExtendedKeyUsageOID.CLIENT_AUTH]
        local = ("localhost", "127.0.0.1")
        self.leaves: dict[str, Leaf] = {}
        for label, names, issuer, usage, validity, key in (
            ("localhost", local, self.ca, server, None, "ecdsa"),
            ("other-name", ("other.example",), self.ca, server, None, "ecdsa"),
            ("expired", local, self.ca, server, (-30, -1), "ecdsa"),
            ("not-yet-valid", local, self.ca, server, (1, 30), "ecdsa"),
            ("self-signed", local, None, server, None, "ecdsa"),
            ("unknown-ca", local, self.unknown_ca, server, None, "ecdsa"),
            ("inner", ("inner.test",), self.ca, server, None, "ecdsa"),
            ("alt", ("alt.example",), self.ca, server, None, "ecdsa"),
            ("rsa", local, self.ca, server, None, "rsa"),
            ("ed25519", local, self.ca, server, None, "ed25519"),
            ("client", ("conformance client",), self.ca, client, None, "ecdsa"),
            ("stranger-client", ("stranger client",), self.unknown_ca, client, None, "ecdsa"),
        ):
            self.leaves[label] = self._leaf(label, names, issuer, usage, validity, key)

    def __getitem__(self, label: str) -> Leaf:
        return self.leaves[label]

    def ca_der(self) -> bytes:
        return self.ca.cert.public_bytes(serialization.Encoding.DER)

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

    def _authority(self, common_name: str) -> _Authority:
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
        return _Authority(name, key, cert)

    def _leaf(self, label, names, issuer, usage, validity, key_type) -> Leaf:
        key = {"ecdsa": lambda: ec.generate_private_key(ec.SECP256R1()),
               "rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
               "ed25519": ed25519.Ed25519PrivateKey.generate}[key_type]()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
        start, end = (self.now - DAY, self.now + 30 * DAY) if validity is None else (
            self.now + validity[0] * DAY, self.now + validity[1] * DAY)
        alternative_names = [
            x509.IPAddress(ipaddress.ip_address(name)) if name[0].isdigit()
            else x509.DNSName(name) for name in names if " " not in name]
        builder = (x509.CertificateBuilder()
                   .subject_name(subject)
                   .issuer_name(issuer.name if issuer else subject)
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(end)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True)
                   .add_extension(x509.ExtendedKeyUsage(usage), critical=False))
        if alternative_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alternative_names),
                                            critical=False)
        if issuer is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                critical=False)
        signer = issuer.key if issuer else key
        algorithm = None if key_type == "ed25519" and issuer is None else hashes.SHA256()
        cert = builder.sign(signer, algorithm)
        cert_file = self.directory / f"{label}.pem"
        key_file = self.directory / f"{label}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return Leaf(label, key, (cert,), cert_file, key_file)


def _encode(key, chain, key_format: str, encoding: str) -> tuple[bytes, list[bytes]]:
    serialized = {"pem": serialization.Encoding.PEM, "der": serialization.Encoding.DER}[encoding]
    private_format = {"pkcs8": serialization.PrivateFormat.PKCS8,
                      "traditional": serialization.PrivateFormat.TraditionalOpenSSL}[key_format]
    return (key.private_bytes(serialized, private_format, serialization.NoEncryption()),
            [cert.public_bytes(serialized) for cert in chain])
