"""Private identities: every key encoding and type the host accepts (encrypted
keys and PKCS#12 files too), the ones it refuses with a reason, how it picks
identities for a ClientHello, and that keys reach OpenSSL without touching a
disk."""

from __future__ import annotations

import datetime
import os
import ssl
import tempfile

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from pki import Leaf, der_chain

from wasi_tls_host.tls.identity import IdentityError, IdentityPasswordError, PrivateIdentity
from wasi_tls_host.tls.policy import choose_identities

Encoding, Format = serialization.Encoding, serialization.PrivateFormat


def key_of(leaf: Leaf):
    return serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)


def der(leaf: Leaf) -> bytes:
    return der_chain(leaf)[0]


@pytest.mark.parametrize("key_type", ["rsa", "ecdsa"])
@pytest.mark.parametrize("encoding", [Encoding.PEM, Encoding.DER])
@pytest.mark.parametrize("layout", [Format.PKCS8, Format.TraditionalOpenSSL])
def test_every_key_encoding_is_accepted(pki, key_type, encoding, layout):
    leaf = pki.leaf("a.example", key_type=key_type)
    key = key_of(leaf).private_bytes(encoding, layout, serialization.NoEncryption())
    identity = PrivateIdentity.parse(key, [der(leaf)])
    assert identity.public.chain == (der(leaf),)
    assert identity.key_type == key_type


def self_signed(key, name: str, hash_algorithm=None) -> x509.Certificate:
    """A one-day certificate for `name` signed by `key` itself (EdDSA keys take no hash)."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hash_algorithm))


def self_signed_ed25519(name: str):
    key = ed25519.Ed25519PrivateKey.generate()
    return key, self_signed(key, name)


def test_ed25519_is_accepted():
    key, cert = self_signed_ed25519("ed.example")
    identity = PrivateIdentity.parse(
        key.private_bytes(Encoding.DER, Format.PKCS8, serialization.NoEncryption()),
        [cert.public_bytes(Encoding.DER)])
    assert identity.key_type == "ed25519" and identity.serves("ed.example")


def test_a_pem_chain_may_come_whole_or_per_certificate(pki):
    leaf = pki.leaf("a.example")
    bundle = b"".join(blob.bytes() for blob in leaf.cert_chain_pems) + pki.ca.cert_pem.bytes()
    whole = PrivateIdentity.parse(leaf.private_key_pem.bytes(), [bundle])
    assert len(whole.public.chain) == 2 and whole.public.chain[0] == der(leaf)


@pytest.mark.parametrize("problem, key, chain, message", [
    ("empty chain", "leaf", [], "chain is empty"),
    ("garbage key", b"not a key", "leaf", "private key cannot be read"),
    ("garbage certificate", "leaf", [b"not a certificate"], "certificate 0 of the chain"),
    ("another key", "other", "leaf", "does not match the leaf"),
])
def test_bad_input_is_refused_with_a_reason(pki, problem, key, chain, message):
    leaf, other = pki.leaf("a.example"), pki.leaf("b.example")
    key = {"leaf": leaf.private_key_pem.bytes(), "other": other.private_key_pem.bytes()}.get(
        key, key) if isinstance(key, str) else key
    chain = [der(leaf)] if chain == "leaf" else chain
    with pytest.raises(IdentityError, match=message):
        PrivateIdentity.parse(key, chain)


def test_encrypted_and_unsupported_keys_are_refused(pki):
    leaf = pki.leaf("a.example")
    encrypted = key_of(leaf).private_bytes(Encoding.PEM, Format.PKCS8,
                                           serialization.BestAvailableEncryption(b"pw"))
    with pytest.raises(IdentityError, match="encrypted"):
        PrivateIdentity.parse(encrypted, [der(leaf)])
    # A type the host takes (RSA), refused by OpenSSL's security level for its size.
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(weak.public_key()).serial_number(2).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(weak, hashes.SHA256()))
    with pytest.raises(IdentityError, match="OpenSSL refuses the identity"):
        PrivateIdentity.parse(weak.private_bytes(Encoding.PEM, Format.PKCS8,
                                                 serialization.NoEncryption()),
                              [cert.public_bytes(Encoding.DER)])


@pytest.mark.parametrize("key_type, make_key, hash_algorithm", [
    ("Ed448PrivateKey", ed448.Ed448PrivateKey.generate, None),
    ("DSAPrivateKey", lambda: dsa.generate_private_key(key_size=2048), hashes.SHA256()),
])
def test_key_types_other_than_rsa_ecdsa_and_ed25519_are_refused(key_type, make_key,
                                                                hash_algorithm):
    """Keys `cryptography` reads but the host does not serve (it matches
    identities to the client's RSA, ECDSA and Ed25519 signature schemes):
    refused by type, before OpenSSL sees them."""
    key = make_key()
    cert = self_signed(key, "odd.example", hash_algorithm)
    with pytest.raises(IdentityError) as info:
        PrivateIdentity.parse(key.private_bytes(Encoding.PEM, Format.PKCS8,
                                                serialization.NoEncryption()),
                              [cert.public_bytes(Encoding.DER)])
    assert str(info.value) == f"unsupported key type {key_type}: use RSA, ECDSA or Ed25519"


def test_keys_reach_openssl_through_an_anonymous_memory_file(pki, monkeypatch):
    identity = pki.identity("a.example")
    made = []
    real_memfd_create = os.memfd_create
    monkeypatch.setattr(os, "memfd_create", lambda *args: made.append(
        real_memfd_create(*args)) or made[-1])
    places = [tempfile.gettempdir(), os.getcwd(), "/dev/shm"]
    before = [set(os.listdir(place)) for place in places]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    identity.load_into(context)
    assert len(made) == 1
    with pytest.raises(OSError):
        os.fstat(made[0])  # closed right after OpenSSL read it
    assert [set(os.listdir(place)) for place in places] == before


def test_from_files_names_a_missing_file(tmp_path):
    with pytest.raises(IdentityError, match="missing.pem"):
        PrivateIdentity.from_files(str(tmp_path / "missing.pem"), str(tmp_path / "k.pem"))


SIGALGS_RSA_ONLY = (0x0804, 0x0401)
SIGALGS_ECDSA_ONLY = (0x0403,)


def test_choice_prefers_the_name_then_lets_openssl_pick_the_key_type(pki):
    a_ec = pki.identity("a.example", key_type="ecdsa")
    a_rsa = pki.identity("a.example", key_type="rsa")
    b_ec = pki.identity("b.example", "*.b.example", key_type="ecdsa")
    everything = [b_ec, a_ec, a_rsa]
    assert choose_identities(everything, "a.example", ()) == [a_ec, a_rsa]
    assert choose_identities(everything, "www.b.example", ()) == [b_ec]
    assert choose_identities(everything, "unknown.example", ()) == [b_ec, a_rsa]
    assert choose_identities(everything, None, ()) == [b_ec, a_rsa]
    # a name match the client cannot verify does not win
    assert choose_identities([b_ec, a_rsa], "b.example", SIGALGS_RSA_ONLY) == [a_rsa]
    assert choose_identities([a_rsa], "a.example", SIGALGS_ECDSA_ONLY) == [a_rsa]


# -- encrypted keys and PKCS#12 ---------------------------------------------------

def encrypted_key(leaf: Leaf, password: bytes, encoding=Encoding.PEM) -> bytes:
    return key_of(leaf).private_bytes(encoding, Format.PKCS8,
                                      serialization.BestAvailableEncryption(password))


@pytest.mark.parametrize("encoding", [Encoding.PEM, Encoding.DER])
@pytest.mark.parametrize("password", [b"s3cret", "s3cr\u00e9t"], ids=["bytes", "text"])
def test_an_encrypted_key_opens_with_its_password(pki, encoding, password):
    leaf = pki.leaf("a.example")
    secret = password.encode() if isinstance(password, str) else password
    identity = PrivateIdentity.parse(encrypted_key(leaf, secret, encoding), [der(leaf)],
                                     password=password)
    assert identity.public.chain == (der(leaf),) and identity.serves("a.example")


def test_a_password_is_ignored_for_a_plain_key(pki):
    """One password serves all of an operator's identities, encrypted or not."""
    leaf = pki.leaf("a.example")
    identity = PrivateIdentity.parse(leaf.private_key_pem.bytes(), [der(leaf)], password=b"x")
    assert identity.public.chain == (der(leaf),)


def test_encrypted_key_without_or_with_a_wrong_password(pki):
    leaf = pki.leaf("a.example")
    blob = encrypted_key(leaf, b"right")
    with pytest.raises(IdentityPasswordError,
                       match="^the private key is encrypted and no password was given$"):
        PrivateIdentity.parse(blob, [der(leaf)])
    with pytest.raises(IdentityPasswordError,
                       match="^the password does not decrypt the private key$"):
        PrivateIdentity.parse(blob, [der(leaf)], password=b"wrong")


def pkcs12_file(path, leaf: Leaf, password: bytes | None, *,
                with_key=True, extra=()) -> str:
    """`leaf` (and `extra` certificates) as a PKCS#12 file, encrypted with
    `password` unless it is None."""
    cert = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    encryption = (serialization.BestAvailableEncryption(password) if password is not None
                  else serialization.NoEncryption())
    path.write_bytes(pkcs12.serialize_key_and_certificates(
        b"leaf", key_of(leaf) if with_key else None, cert, list(extra) or None, encryption))
    return str(path)


def test_pkcs12_with_and_without_encryption(pki, tmp_path):
    leaf = pki.leaf("a.example", key_type="rsa")
    plain = PrivateIdentity.from_pkcs12(pkcs12_file(tmp_path / "plain.p12", leaf, None))
    encrypted = PrivateIdentity.from_pkcs12(pkcs12_file(tmp_path / "enc.p12", leaf, b"pw"),
                                            password="pw")
    # an unencrypted file opens even when the operator's password is for another
    ignored = PrivateIdentity.from_pkcs12(tmp_path / "plain.p12", password=b"other")
    for identity in (plain, encrypted, ignored):
        assert identity.public.chain == (der(leaf),) and identity.key_type == "rsa"


def test_pkcs12_chain_starts_with_the_keys_certificate(pki, tmp_path):
    """The key's certificate leads, whatever order the file keeps the rest in."""
    leaf = pki.leaf("a.example")
    others = (pki.untrusted_ca.cert, pki.ca.cert)
    identity = PrivateIdentity.from_pkcs12(
        pkcs12_file(tmp_path / "chain.p12", leaf, b"pw", extra=others), password=b"pw")
    assert identity.public.chain[0] == der(leaf)
    assert set(identity.public.chain[1:]) == {cert.public_bytes(Encoding.DER)
                                              for cert in others}


def test_pkcs12_mistakes_are_named(pki, tmp_path):
    leaf = pki.leaf("a.example")
    encrypted = pkcs12_file(tmp_path / "enc.p12", leaf, b"pw")
    with pytest.raises(IdentityPasswordError, match=f"^{encrypted} is encrypted and no "
                                                    "password was given$"):
        PrivateIdentity.from_pkcs12(encrypted)
    with pytest.raises(IdentityPasswordError, match=f"^the password does not open {encrypted}$"):
        PrivateIdentity.from_pkcs12(encrypted, password=b"wrong")
    keyless = pkcs12_file(tmp_path / "keyless.p12", leaf, None, with_key=False)
    with pytest.raises(IdentityError, match="holds no private key"):
        PrivateIdentity.from_pkcs12(keyless)
    pem = tmp_path / "chain.pem"
    pem.write_bytes(leaf.cert_chain_pems[0].bytes())
    with pytest.raises(IdentityError, match="is PEM, not PKCS#12: give NAME=CERTFILE,KEYFILE"):
        PrivateIdentity.from_pkcs12(pem)
    garbage = tmp_path / "garbage.p12"
    garbage.write_bytes(b"\x30\x03\x02\x01\x03")
    with pytest.raises(IdentityError, match="is not a PKCS#12 file"):
        PrivateIdentity.from_pkcs12(garbage)
    with pytest.raises(IdentityError, match="missing.p12: No such file"):
        PrivateIdentity.from_pkcs12(tmp_path / "missing.p12")


def test_decrypted_keys_never_reach_a_disk(pki, tmp_path, monkeypatch):
    """Opening an encrypted PKCS#12 file or PEM key and serving it writes no
    file anywhere a file could land; the key goes to OpenSSL through memory."""
    leaf = pki.leaf("a.example")
    p12 = pkcs12_file(tmp_path / "enc.p12", leaf, b"pw")
    key_file, cert_file = tmp_path / "key.pem", tmp_path / "cert.pem"
    key_file.write_bytes(encrypted_key(leaf, b"pw"))
    cert_file.write_bytes(leaf.cert_chain_pems[0].bytes())
    made = []
    real_memfd_create = os.memfd_create
    monkeypatch.setattr(os, "memfd_create", lambda *args: made.append(
        real_memfd_create(*args)) or made[-1])
    places = [tempfile.gettempdir(), os.getcwd(), "/dev/shm", str(tmp_path)]
    before = [set(os.listdir(place)) for place in places]
    for identity in (PrivateIdentity.from_pkcs12(p12, password=b"pw"),
                     PrivateIdentity.from_files(cert_file, key_file, password=b"pw")):
        identity.load_into(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    assert len(made) == 4  # OpenSSL's check while loading, then the context
    assert [set(os.listdir(place)) for place in places] == before
