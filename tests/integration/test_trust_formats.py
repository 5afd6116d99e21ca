"""Trust and identity formats operators use, through the installed command:
`--identity` from a PKCS#12 file or an encrypted PEM key, with the password
from `--identity-password-file` or $WASI_TLS_HOST_IDENTITY_PASSWORD; and
`--crl-file`, which refuses a revoked server certificate to guest clients
(both wasi:tls clients) and a revoked client certificate to guest servers,
under TLS 1.2 and 1.3."""

from __future__ import annotations

import socket
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from pki import TLS_VERSIONS, der_chain

from conftest import GuestServer, run_host
from peers import facts, fingerprint, python_https_get
from wasi_tls_host.command_line import (
    IDENTITY_PASSWORD_VARIABLE,
    build_parser,
    config_from_args,
)

PASSWORD = "correct horse battery staple"


def usage_error(result) -> str:
    """The one `error:` line of an argparse refusal (exit 2, no traceback)."""
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if "error" in line]
    assert len(errors) == 1, stderr
    return errors[0]


@pytest.fixture(scope="module")
def server_leaf(pki):
    return pki.leaf("localhost", key_type="rsa")


@pytest.fixture(scope="module")
def identity_files(pki, server_leaf, tmp_path_factory):
    """The server's identity as an encrypted PKCS#12 file and as a chain with
    an encrypted PEM key, and a password file (with a trailing line break)."""
    directory = tmp_path_factory.mktemp("identities")
    key = serialization.load_pem_private_key(server_leaf.private_key_pem.bytes(), None)
    encryption = serialization.BestAvailableEncryption(PASSWORD.encode())
    cert = x509.load_pem_x509_certificate(server_leaf.cert_chain_pems[0].bytes())
    files = {"p12": directory / "server.p12", "cert": directory / "server.pem",
             "key": directory / "server-key.pem", "password": directory / "password.txt"}
    files["p12"].write_bytes(pkcs12.serialize_key_and_certificates(
        b"server", key, cert, None, encryption))
    files["cert"].write_bytes(server_leaf.cert_chain_pems[0].bytes())
    files["key"].write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    files["password"].write_text(PASSWORD + "\n")
    return files


def echo_once(port: int, context: ssl.SSLContext) -> tuple[bytes, bytes]:
    """One echo through a guest TLS server: (what came back, the server's leaf)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as conn:
        conn.sendall(b"ping")
        echoed = conn.recv(100)
        leaf = conn.getpeercert(binary_form=True)
        conn.unwrap()
    return echoed, leaf


@pytest.mark.parametrize("form", ["pkcs12", "encrypted-pem"])
@pytest.mark.parametrize("password_from", ["file", "environment"])
def test_a_guest_server_serves_an_encrypted_identity(guests, pki, server_leaf, identity_files,
                                                     form, password_from, version,
                                                     monkeypatch):
    identity = (str(identity_files["p12"]) if form == "pkcs12"
                else f"{identity_files['cert']},{identity_files['key']}")
    flags = ["--allow-net", "127.0.0.1", "--identity", f"server={identity}"]
    if password_from == "file":
        flags += ["--identity-password-file", str(identity_files["password"])]
    else:
        monkeypatch.setenv(IDENTITY_PASSWORD_VARIABLE, PASSWORD)  # the server inherits it
    server = GuestServer(guests["tls-echo-server"], "127.0.0.1:0", "1", flags=tuple(flags))
    try:
        context = pki.client_context(version)
        context.minimum_version = TLS_VERSIONS[version]
        echoed, leaf = echo_once(server.port, context)
        status, out, errors = server.finish()
    finally:
        server.close()
    assert (status, echoed) == (0, b"ping"), errors
    assert leaf == der_chain(server_leaf)[0]
    assert "served 1 connections, 4 bytes" in out


def test_identity_password_mistakes_are_one_line(guests, identity_files, tmp_path):
    p12, cert, key = identity_files["p12"], identity_files["cert"], identity_files["key"]
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not it\n")
    probe = guests["wasi-probe"]
    prefix = "wasi-tls-host run: error: argument --identity: identity 'server': "
    assert usage_error(run_host(probe, flags=("--identity", f"server={p12}"))) == (
        f"{prefix}{p12} is encrypted and no password was given (give the password with "
        f"--identity-password-file FILE or ${IDENTITY_PASSWORD_VARIABLE})")
    assert usage_error(run_host(probe, flags=("--identity", f"server={cert},{key}"))) == (
        f"{prefix}the private key is encrypted and no password was given (give the password "
        f"with --identity-password-file FILE or ${IDENTITY_PASSWORD_VARIABLE})")
    # the password file may come after the identity that needs it
    assert usage_error(run_host(probe, flags=(
        "--identity", f"server={p12}", "--identity-password-file", str(wrong)))) == (
        f"{prefix}the password does not open {p12} (password from "
        f"--identity-password-file {wrong})")
    assert usage_error(run_host(probe, flags=("--identity", f"server={cert},{key}"),
                                env={IDENTITY_PASSWORD_VARIABLE: "nope"})) == (
        f"{prefix}the password does not decrypt the private key (password from "
        f"${IDENTITY_PASSWORD_VARIABLE})")
    assert usage_error(run_host(probe, flags=(
        "--identity-password-file", str(tmp_path / "none.txt")))) == (
        "wasi-tls-host run: error: argument --identity-password-file: identity password file "
        f"not found: {tmp_path}/none.txt")


def test_the_password_variable_never_reaches_the_guest(guests, monkeypatch, identity_files):
    """Not even with --inherit-env: the command takes it out of its environment."""
    monkeypatch.setenv(IDENTITY_PASSWORD_VARIABLE, PASSWORD)
    monkeypatch.setenv("OTHER_VARIABLE", "kept")
    options = build_parser().parse_args([
        "run", "--inherit-env", "--identity", f"server={identity_files['p12']}",
        str(guests["wasi-probe"])])
    environment = config_from_args(options).environment()
    assert IDENTITY_PASSWORD_VARIABLE not in environment
    assert environment["OTHER_VARIABLE"] == "kept"
    assert dict(options.identity)["server"].key_type == "rsa"


# -- revocation ------------------------------------------------------------------

class TlsPeer:
    """A Python ssl server for `count` connections: it echoes, answers
    close_notify with its own, and records how each connection ended."""

    def __init__(self, context: ssl.SSLContext, count: int = 1):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.ended: list[str] = []
        self.thread = threading.Thread(target=self._serve, args=(context, count), daemon=True)
        self.thread.start()

    def _serve(self, context: ssl.SSLContext, count: int) -> None:
        for _ in range(count):
            raw, _ = self.listener.accept()
            raw.settimeout(30)
            try:
                with context.wrap_socket(raw, server_side=True) as conn:
                    while data := conn.recv(65536):
                        conn.sendall(data)
                    conn.unwrap()
                self.ended.append("ok")
            except (ssl.SSLError, OSError) as error:
                self.ended.append(str(error))
            finally:
                raw.close()

    def finish(self) -> list[str]:
        self.thread.join(30)
        self.listener.close()
        return self.ended


@pytest.fixture(scope="module")
def revocation(pki):
    """A revoked and a good leaf of the trusted CA, for servers and clients,
    and the CA's CRL revoking the first."""
    revoked, good = pki.leaf("localhost"), pki.leaf("localhost")
    revoked_client, good_client = pki.leaf("client.example"), pki.leaf("client.example")
    return {"revoked": revoked, "good": good, "revoked client": revoked_client,
            "good client": good_client, "crl": pki.crl_file(revoked, revoked_client)}


def test_a_guest_client_refuses_a_revoked_server_certificate(guests, pki, revocation, version):
    """wasi:tls (upstream): the guest hears why; the server hears the alert."""
    peer = TlsPeer(pki.server_context(revocation["revoked"], version))
    result = run_host(guests["tls-echo-client"], f"127.0.0.1:{peer.port}", "10", "localhost",
                      flags=("--ca-file", str(pki.ca_file), "--crl-file", str(revocation["crl"]),
                             "--allow-net", f"127.0.0.1:{peer.port}"))
    assert result.returncode == 1
    assert result.stderr.decode() == ("error: certificate verify failed: certificate revoked "
                                      "(server name: localhost)\n")
    assert "alert certificate revoked" in peer.finish()[0]


def test_a_guest_client_accepts_a_good_certificate_under_the_same_crl(guests, pki, revocation,
                                                                     version):
    peer = TlsPeer(pki.server_context(revocation["good"], version))
    result = run_host(guests["tls-echo-client"], f"127.0.0.1:{peer.port}", "1000", "localhost",
                      flags=("--ca-file", str(pki.ca_file), "--crl-file", str(revocation["crl"]),
                             "--allow-net", f"127.0.0.1:{peer.port}"))
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().endswith("closed cleanly\n")
    assert peer.finish() == ["ok"]


def test_a_full_draft_client_refuses_a_revoked_server_certificate(guests, pki, revocation,
                                                                  version):
    """wasi-tls-host:tls: refused with the certificate_revoked alert. The guest
    reads only that verifying failed: the draft's futures carry no reason yet
    (issue 17 extends the WIT for it)."""
    client = revocation["good client"]
    peer = TlsPeer(pki.server_context(revocation["revoked"], version))
    result = run_host(guests["mtls-client"], f"127.0.0.1:{peer.port}", "localhost", flags=(
        "--ca-file", str(pki.ca_file), "--crl-file", str(revocation["crl"]),
        "--allow-net", f"127.0.0.1:{peer.port}",
        "--identity", f"me={client.cert_file},{client.key_file}"))
    assert result.returncode == 1
    assert result.stderr.decode() == (
        "error: certificate verify failed: certificate revoked (server name: localhost)\n")
    assert "alert certificate revoked" in peer.finish()[0]


def test_a_guest_server_refuses_a_revoked_client_certificate(guests, pki, revocation, version):
    server_files = pki.leaf("localhost")
    server = GuestServer(guests["https-server"], "127.0.0.1:0", "--requests", "1",
                         "--client-auth", "require", flags=(
                             "--allow-net", "127.0.0.1", "--client-ca", str(pki.ca_file),
                             "--crl-file", str(revocation["crl"]),
                             "--identity", f"s={server_files.cert_file},{server_files.key_file}"))
    try:
        def context(leaf):
            made = pki.client_context(version, leaf)
            made.minimum_version = TLS_VERSIONS[version]
            return made
        with pytest.raises(ssl.SSLError, match="alert certificate revoked"):
            python_https_get(server.port, "localhost", "/", context(revocation["revoked client"]))
        accepted = python_https_get(server.port, "localhost", "/",
                                    context(revocation["good client"]))
        status, _, errors = server.finish()
    finally:
        server.close()
    assert (status, accepted.status) == (0, 200), errors
    assert facts(accepted.body)["client certificate"] == fingerprint(
        der_chain(revocation["good client"])[0])
    assert errors == ("connection 1: error: certificate verify failed: certificate revoked "
                      "(client certificate)\n")


def test_crl_file_mistakes_are_one_line(guests, pki, tmp_path):
    probe = guests["wasi-probe"]
    missing = run_host(probe, flags=("--crl-file", str(tmp_path / "none.pem")))
    assert usage_error(missing) == ("wasi-tls-host run: error: argument --crl-file: CRL file "
                                    f"not found: {tmp_path}/none.pem")
    not_a_crl = run_host(probe, flags=("--crl-file", str(pki.ca_file)))
    assert (not_a_crl.returncode, not_a_crl.stderr.decode()) == (
        2, f"wasi-tls-host: CRL file holds a CERTIFICATE, not only CRLs: {pki.ca_file}\n")
