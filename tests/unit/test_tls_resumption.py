"""Session resumption for the host's TLS clients (tls.resumption), core to
a Python ssl server in memory: which later connection may resume what an
earlier one kept, under TLS 1.2 and 1.3. The server's `session_reused` is
the proof."""

from __future__ import annotations

import ssl

import pytest
from lockstep import PlainSSLPeer, handshake_ok, send
from pki import Pki

from wasi_tls_host.tls import TlsCore, TlsPolicy
from wasi_tls_host.tls.resumption import SessionCache

PEER = ("127.0.0.1", 4433)


class Server:
    """One Python ssl server context (and so one ticket key) for a test."""

    def __init__(self, pki: Pki, version: str, **options):
        self.context = pki.server_context(pki.leaf("localhost", "alt.example"), version,
                                          **options)

    def connect(self, cache: SessionCache, context: ssl.SSLContext, *,
                name: str = "localhost", peer: object = PEER, greet: bool = True,
                drop: bool = True) -> tuple[TlsCore, PlainSSLPeer]:
        """One client connection through `cache`: handshake, the server's
        greeting (TLS 1.3: its tickets come with it), then dropped (kept)."""
        resumption = cache.resumption(name, peer)
        core = TlsCore(context, server_hostname=name, offer_session=resumption.offer)
        server = PlainSSLPeer(self.context, server_side=True)
        handshake_ok(core, server)
        if greet:
            assert send(server, core, b"hi") == b"hi"
        if drop:
            resumption.keep(core)
        return core, server


def reused(server: PlainSSLPeer, core: TlsCore) -> bool:
    assert core.session_reused() == server.obj.session_reused
    return server.obj.session_reused


def test_the_same_server_resumes_and_the_facts_stand(pki, version):
    server, policy, cache = Server(pki, version), pki.policy(), SessionCache()
    context = policy.client_context()
    first, first_server = server.connect(cache, context)
    assert not reused(first_server, first)
    for _ in range(2):  # each connection keeps the session it ended with
        core, peer = server.connect(cache, context)
        assert reused(peer, core)
        assert core.version() == first.version() == f"TLSv{version}"
        assert core.cipher() == first.cipher()
        # The session keeps the leaf the server sent when it was made.
        assert core.peer_chain() == (first.peer_certificate_der(),)
        assert core.peer_certificate_der() == first.peer_certificate_der()


@pytest.mark.parametrize("change", ["name", "peer", "trust", "identity", "alpn"])
def test_a_different_server_or_configuration_gets_a_full_handshake(pki, version, change):
    server, cache = Server(pki, version), SessionCache()
    policy = pki.policy()
    server.connect(cache, policy.client_context())
    second = {"name": {"name": "alt.example"}, "peer": {"peer": ("127.0.0.1", 4434)}}.get(
        change, {})
    context = {
        # Another policy with the same CA: other contexts, other trust as far
        # as the host knows (one guest run has one policy).
        "trust": lambda: pki.policy().client_context(),
        "identity": lambda: policy.client_context(identity=pki.identity("client.example")),
        "alpn": lambda: policy.client_context(alpn_ids=("h2",)),
    }.get(change, policy.client_context)()
    core, peer = server.connect(cache, context, **second)
    assert not reused(peer, core)
    # The first server's session is still kept for the first configuration.
    core, peer = server.connect(cache, policy.client_context())
    assert reused(peer, core)


def test_two_caches_share_nothing(pki, version):
    server, policy = Server(pki, version), pki.policy()
    context = policy.client_context()
    server.connect(SessionCache(), context)
    core, peer = server.connect(SessionCache(), context)
    assert not reused(peer, core)


def test_tls13_sends_no_ticket_twice_and_a_connection_that_read_nothing_keeps_nothing(
        pki, version):
    server, cache = Server(pki, version), SessionCache()
    context = pki.policy().client_context()
    server.connect(cache, context, greet=False)
    # TLS 1.2 has its session once the handshake is done; TLS 1.3 its
    # ticket only after it, with the server's first records.
    assert len(cache) == (1 if version == "1.2" else 0)
    server.connect(cache, context)
    core, peer = server.connect(cache, context, greet=False)
    assert reused(peer, core)
    assert len(cache) == (1 if version == "1.2" else 0)


def test_a_connection_still_open_holds_its_session(pki, version):
    server, cache = Server(pki, version), SessionCache()
    context = pki.policy().client_context()
    server.connect(cache, context)
    server.connect(cache, context, drop=False)  # took the session, keeps it while open
    core, peer = server.connect(cache, context)
    assert not reused(peer, core)


def test_a_truncated_connection_keeps_nothing(pki, version):
    server, cache = Server(pki, version), SessionCache()
    context = pki.policy().client_context()
    core, _ = server.connect(cache, context, drop=False)
    core.receive_eof()  # the transport ended without close_notify
    with pytest.raises(Exception, match="truncated"):
        core.read(10)
    cache.resumption("localhost", PEER).keep(core)
    assert len(cache) == 0


def test_the_policy_has_resumption_off_unless_asked():
    assert not TlsPolicy().resume_sessions
    assert TlsPolicy(resume_sessions=True).resume_sessions
