"""Session resumption (`--tls-resume`) with guests built from source against
real servers on loopback, under TLS 1.2 and 1.3: off by default; on, a
guest's later connections to the same server resume (the server says so),
through the upstream client, the draft client and wasi:http (under `run`
and within one `serve` request), with the same facts for the guest; another
server name, a session made with a client certificate, another guest run
and another `serve` request get a full handshake."""

from __future__ import annotations

import io
import re
import ssl
import subprocess

import pytest
import serving
from http_peers import H11Server, body_bytes, sha256

from conftest import run_host
from peers import facts, fingerprint, free_port, openssl_flag, wait_for_port
from wasi_tls_host import Host, HostConfig
from wasi_tls_host.config import NetRule
from wasi_tls_host.conformance.peers import Served, TlsEcho, TlsObserver


class ResumeNotes:
    """Notes, per connection in order, whether it resumed a session."""

    served: list[Served]

    def session(self, tls: ssl.SSLSocket, record: Served) -> None:
        record.notes["reused"] = tls.session_reused
        super().session(tls, record)  # type: ignore[misc]

    def reused(self) -> list[bool]:
        self.close()  # type: ignore[attr-defined]  # every connection finished
        return [record.notes.get("reused") for record in self.served]


class Echo(ResumeNotes, TlsEcho):
    """Echoes; its certificate names localhost, 127.0.0.1 and alt.example."""

    def __init__(self, pki, version):
        super().__init__(pki, version)
        self.context = pki.server_context(pki.leaf("localhost", "127.0.0.1", "alt.example"),
                                          version)


class Observer(ResumeNotes, TlsObserver):
    pass


def echo_client(guests, pki, port, names, *flags):
    return run_host(guests["tls-echo-client"], "--names", names, f"127.0.0.1:{port}", "16",
                    flags=("--ca-file", str(pki.ca_file), "--allow-net", f"127.0.0.1:{port}",
                           *flags))


def test_off_by_default_no_connection_resumes(guests, pki, version):
    server = Echo(pki, version)
    result = echo_client(guests, pki, server.port, "localhost,localhost,localhost")
    assert result.returncode == 0, result.stderr.decode()
    assert server.reused() == [False, False, False]


def test_on_later_connections_to_the_same_server_resume(guests, pki, version):
    server = Echo(pki, version)
    result = echo_client(guests, pki, server.port, "localhost,localhost,localhost",
                         "--tls-resume")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().count("closed cleanly") == 3
    assert server.reused() == [False, True, True]


def test_another_server_name_gets_a_full_handshake(guests, pki, version):
    server = Echo(pki, version)
    result = echo_client(guests, pki, server.port, "localhost,alt.example,localhost",
                         "--tls-resume")
    assert result.returncode == 0, result.stderr.decode()
    assert server.reused() == [False, False, True]


def test_two_guest_runs_share_no_session(guests, pki, version):
    """Two runs of one host with one config (so one policy and the same
    contexts): the second run's first connection is a full handshake."""
    server = Echo(pki, version)
    config = HostConfig(tls=pki.policy(resume_sessions=True),
                        allow_net=[NetRule.parse(f"127.0.0.1:{server.port}")],
                        stdout=io.BytesIO(), stderr=io.BytesIO())
    host = Host()
    for _ in range(2):
        assert host.run(str(guests["tls-echo-client"]),
                        args=["tls-echo-client", "--names", "localhost,localhost",
                              f"127.0.0.1:{server.port}", "16"], config=config) == 0
    assert server.reused() == [False, True, False, True]


def draft_client(guests, pki, identity, port, *args):
    return run_host(guests["mtls-client"], f"127.0.0.1:{port}", "localhost", *args, flags=(
        "--ca-file", str(pki.ca_file), "--allow-net", f"127.0.0.1:{port}", "--tls-resume",
        "--identity", f"me={identity.cert_file},{identity.key_file}"))


def reports(stdout: bytes) -> list[dict[str, str]]:
    """mtls-client --repeat: one report per connection."""
    blocks = re.split(r"(?m)^(?=server certificate: )", stdout.decode())
    return [facts(block) for block in blocks if block]


@pytest.fixture(scope="module")
def identity(pki):
    return pki.leaf("client.example")


def test_the_draft_client_resumes_and_reports_the_same_facts(guests, pki, identity, version):
    server = Observer(pki, version, alpn=("http/1.1",))
    result = draft_client(guests, pki, identity, server.port, "--repeat", "3",
                          "--alpn", "h2,http/1.1")
    assert result.returncode == 0, result.stderr.decode()
    assert server.reused() == [False, True, True]
    first, *resumed = reports(result.stdout)
    assert first == {
        "server certificate": fingerprint(pki["localhost"].chain_der()[0]),
        "reply": "hello", "client certificate sent": "none",
        "protocol": f"TLSv{version}", "cipher suite": first["cipher suite"],
        "alpn": "http/1.1"}
    assert resumed == [first, first]


def test_a_session_made_with_a_client_certificate_is_not_resumed(guests, pki, identity,
                                                                 version):
    """The draft client picks its certificate when the server asks, after
    the ClientHello: a session that carries one is never offered again."""
    server = Observer(pki, version, client_auth="required")
    result = draft_client(guests, pki, identity, server.port, "--repeat", "2")
    assert result.returncode == 0, result.stderr.decode()
    assert server.reused() == [False, False]
    sent = fingerprint(identity.chain_der()[0])
    assert [report["client certificate sent"] for report in reports(result.stdout)] == [
        sent, sent]


def openssl_resumed(log: str) -> list[bool]:
    """Per connection `openssl s_server -msg` logged: resumed when the server
    sent no Certificate message."""
    hellos = log.split(", ClientHello\n")[1:]
    return [not re.search(r"(?m)^>>> .*, Certificate$", hello) for hello in hellos]


def test_openssl_s_server_sees_the_second_connection_resume(guests, pki, identity, version):
    leaf = pki["localhost"]
    port = free_port()
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(leaf.cert_file),
         "-key", str(leaf.key_file), "-rev", "-msg", openssl_flag(version)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, server)
        result = draft_client(guests, pki, identity, port, "--repeat", "2", "--message", "ping")
    finally:
        server.kill()
        log = server.communicate()[0].decode()
    assert result.returncode == 0, result.stderr.decode()
    assert [report["reply"] for report in reports(result.stdout)] == ["gnip", "gnip"]
    assert openssl_resumed(log) == [False, True]


@pytest.mark.parametrize("resume", [False, True], ids=["default", "tls-resume"])
def test_wasi_http_requests_resume_only_when_asked(guests, pki, version, resume):
    context = pki.server_context(pki.leaf("localhost", "127.0.0.1"), version)
    context.set_alpn_protocols(["http/1.1"])
    server = H11Server(context)
    try:
        result = run_host(guests["http-fetch"], "--repeat", "3",
                          f"https://localhost:{server.port}/bytes/100",
                          flags=("--ca-file", str(pki.ca_file), "--allow-net",
                                 f"localhost:{server.port}", *(["--tls-resume"] * resume)))
    finally:
        server.close()
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().count("HTTP 200\n") == 3
    assert [seen.resumed for seen in server.seen] == [False, resume, resume]
    assert [seen.alpn for seen in server.seen] == ["http/1.1"] * 3


@pytest.mark.parametrize("resume", [False, True], ids=["default", "tls-resume"])
def test_serve_resumes_within_a_request_never_across_requests(guests, pki, version, resume):
    """`serve` gives each request a context of its own: with --tls-resume a
    request's second outgoing connection resumes its first one's session,
    and the next request, even on the same client connection, has none."""
    origin = H11Server(pki.server_context(pki["localhost"], version))
    served = serving.Served(guests["http-proxy"], "--ca-file", str(pki.ca_file),
                            "--allow-net", f"localhost:{origin.port}", *(["--tls-resume"] * resume))
    url = f"https://localhost:{origin.port}/bytes/100"
    try:
        with serving.HttpClient(served.port) as client:
            replies = [client.request("GET", f"/fetch?url={url}&times=2") for _ in range(2)]
    finally:
        served.close()
        origin.close()
    for reply in replies:
        assert (reply.status, reply.headers["x-upstream-status"]) == (200, "200,200"), reply
        assert (reply.size, reply.sha256) == (100, sha256(body_bytes(100)))
    assert [seen.resumed for seen in origin.seen] == [False, resume, False, resume]
