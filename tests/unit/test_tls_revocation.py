"""Revocation checking with the operator's CRL files (`TlsPolicy(crl_files=...)`):
the policy's client contexts refuse a revoked server certificate and its
server contexts a revoked client certificate, under TLS 1.2 and 1.3, against
Python ssl peers; checking is strict; and a CRL file holds only CRLs."""

from __future__ import annotations

import socket
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from wasi_tls_host.tls.errors import translate
from wasi_tls_host.tls.policy import ClientAuth, TlsPolicy
from wasi_tls_host.tls.revocation import RevocationLists


def handshake(client: ssl.SSLContext, server: ssl.SSLContext) -> dict[str, Exception | None]:
    """One handshake between the two contexts over a socket pair, and one byte
    each way (so a TLS 1.3 client hears the server's verdict on its
    certificate); what each side raised, or None."""
    client_sock, server_sock = socket.socketpair()
    client_sock.settimeout(10)
    server_sock.settimeout(10)
    outcome: dict[str, Exception | None] = {}

    def serve() -> None:
        try:
            with server.wrap_socket(server_sock, server_side=True) as conn:
                conn.sendall(b"s")
                conn.recv(1)
            outcome["server"] = None
        except (ssl.SSLError, OSError) as error:
            outcome["server"] = error
    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client.wrap_socket(client_sock, server_hostname="localhost") as conn:
            conn.recv(1)
            conn.sendall(b"c")
        outcome["client"] = None
    except (ssl.SSLError, OSError) as error:
        outcome["client"] = error
    finally:
        client_sock.close()
        thread.join(10)
        server_sock.close()
    return outcome


def server_failure(error: Exception) -> str:
    """The message the host gives a guest for a failed handshake as the client."""
    assert isinstance(error, ssl.SSLError)
    return translate(error, during_handshake=True, server_side=False,
                     server_hostname="localhost").message


@pytest.fixture(scope="module")
def leaves(pki):
    return {"good": pki.leaf("localhost"), "revoked": pki.leaf("localhost")}


@pytest.fixture(scope="module")
def crl(pki, leaves):
    return pki.crl_file(leaves["revoked"])


def test_the_hosts_clients_refuse_a_revoked_server_certificate(pki, leaves, crl, version):
    policy = pki.policy(crl_files=[str(crl)])
    refused = handshake(policy.client_context(),
                        pki.server_context(leaves["revoked"], version))
    assert server_failure(refused["client"]) == \
        "certificate verify failed: certificate revoked (server name: localhost)"
    accepted = handshake(policy.client_context(), pki.server_context(leaves["good"], version))
    assert accepted == {"client": None, "server": None}


def test_guest_servers_refuse_a_revoked_client_certificate(pki, leaves, crl, version):
    policy = pki.policy(crl_files=[str(crl)])
    server = policy.server_context([pki.identity("localhost")],
                                   client_auth=ClientAuth.IN_HANDSHAKE)
    refused = handshake(pki.client_context(version, leaves["revoked"]), server)
    assert isinstance(refused["server"], ssl.SSLCertVerificationError)
    assert refused["server"].verify_message == "certificate revoked"
    assert "alert certificate revoked" in str(refused["client"])
    accepted = handshake(pki.client_context(version, leaves["good"]), server)
    assert accepted == {"client": None, "server": None}


def test_checking_is_strict_without_a_current_crl_from_the_issuer(pki, leaves, version):
    """A CRL from another CA says nothing about this one's certificates, and an
    expired CRL says nothing current: both refuse, as OpenSSL does."""
    other = pki.crl_file(ca=pki.untrusted_ca)
    expired = pki.crl_file(expired=True)
    for crl, reason in ((other, "unable to get certificate CRL"),
                        (expired, "CRL has expired")):
        policy = pki.policy(crl_files=[str(crl)])
        outcome = handshake(policy.client_context(),
                            pki.server_context(leaves["good"], version))
        assert server_failure(outcome["client"]) == \
            f"certificate verify failed: {reason} (server name: localhost)"


def test_one_file_may_hold_the_crls_of_several_cas(pki, leaves, tmp_path):
    both = tmp_path / "both.pem"
    both.write_bytes(pki.crl_file(ca=pki.untrusted_ca).read_bytes()
                     + pki.crl_file(leaves["revoked"]).read_bytes())
    policy = pki.policy(crl_files=[str(both)])
    assert handshake(policy.client_context(),
                     pki.server_context(leaves["good"]))["client"] is None
    assert "certificate revoked" in server_failure(handshake(
        policy.client_context(), pki.server_context(leaves["revoked"]))["client"])


def test_without_crl_files_nothing_is_checked(pki, leaves):
    policy = pki.policy()
    assert not policy.client_context().verify_flags & ssl.VERIFY_CRL_CHECK_LEAF
    assert handshake(policy.client_context(),
                     pki.server_context(leaves["revoked"]))["client"] is None


def test_crl_file_mistakes_are_one_line_naming_the_file(pki, leaves, tmp_path):
    der = tmp_path / "crl.der"
    der.write_bytes(x509.load_pem_x509_crl(pki.crl_file().read_bytes()).public_bytes(
        serialization.Encoding.DER))
    certificate = tmp_path / "ca-as-crl.pem"
    certificate.write_bytes(pki.crl_file().read_bytes() + pki.ca.cert_pem.bytes())
    broken = tmp_path / "broken.pem"
    broken.write_bytes(b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n")
    cases = {
        tmp_path / "missing.pem":
            f"CRL file is not readable: {tmp_path}/missing.pem: No such file or directory",
        der: f"CRL file holds no PEM CRL: {der} (convert a DER CRL with "
             "`openssl crl -inform DER -in FILE -out FILE.pem`)",
        certificate: f"CRL file holds a CERTIFICATE, not only CRLs: {certificate}",
        broken: f"CRL file has a CRL that cannot be read: {broken}: ",
    }
    for path, message in cases.items():
        with pytest.raises(ValueError) as caught:
            TlsPolicy(crl_files=[str(path)]).check()
        assert str(caught.value).startswith(message)
        assert "\n" not in str(caught.value)


def test_crl_files_are_read_once(pki, leaves, tmp_path):
    """A CRL replaced on disk takes effect at the next start, not half-way
    through a run (contexts built later see what the first one saw)."""
    path = tmp_path / "crl.pem"
    path.write_bytes(pki.crl_file(leaves["revoked"]).read_bytes())
    policy = pki.policy(crl_files=[str(path)])
    policy.check()
    path.write_bytes(b"gone")
    outcome = handshake(policy.client_context(), pki.server_context(leaves["revoked"]))
    assert "certificate revoked" in server_failure(outcome["client"])


def test_the_lists_load_from_memory_as_pem(pki, leaves, crl):
    lists = RevocationLists.read([crl])
    assert lists.pem.startswith(b"-----BEGIN X509 CRL-----")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    lists.load_into(context)
    assert context.verify_flags & ssl.VERIFY_CRL_CHECK_LEAF
    assert context.cert_store_stats()["crl"] == 1


def test_certificates_asked_for_after_the_handshake_are_checked_too(pki, leaves, crl):
    """TLS 1.3 post-handshake authentication (TLS 1.2 has none) meets the same CRLs."""
    policy = pki.policy(crl_files=[str(crl)])
    server = policy.server_context([pki.identity("localhost")],
                                   client_auth=ClientAuth.POST_HANDSHAKE)
    client = pki.client_context("1.3", leaves["revoked"])
    client.post_handshake_auth = True
    client_sock, server_sock = socket.socketpair()
    for sock in (client_sock, server_sock):
        sock.settimeout(10)
    failure: list[Exception] = []

    def serve() -> None:
        with server.wrap_socket(server_sock, server_side=True) as conn:
            conn.verify_client_post_handshake()
            conn.sendall(b"s")  # carries the CertificateRequest
            try:
                conn.recv(1)
            except ssl.SSLError as error:
                failure.append(error)
    thread = threading.Thread(target=serve)
    thread.start()
    with client.wrap_socket(client_sock, server_hostname="localhost") as conn:
        conn.recv(1)
        try:
            conn.sendall(b"c")  # after the client's Certificate and Finished
            conn.recv(1)
        except (ssl.SSLError, OSError):
            pass  # refused: what the server saw is asserted below
    thread.join(10)
    server_sock.close()
    assert isinstance(failure[0], ssl.SSLCertVerificationError)
    assert failure[0].verify_message == "certificate revoked"
