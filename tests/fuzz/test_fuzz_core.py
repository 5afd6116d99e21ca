"""Fuzzing the TLS core's record pump against a real OpenSSL peer, in memory.

The core under test (client or server, TLS 1.2 or 1.3, stopping at random
points of the handshake) talks to OpenSSL through `lockstep.PlainSSLPeer`;
one of the peer's transmissions is mutated (bit flips, inserted and deleted
bytes, length fields set to boundary values, truncation), and every stream
is cut at random points. Whatever the peer sends, the core keeps its
promises (`CoreContract`):

* nothing but `TlsFailure` comes out of it, and nothing at all out of
  `ciphertext_to_send`, `ciphertext_pending`, `wants_ciphertext`, `read_ready`;
* no call takes longer than `fuzzing.HANG_SECONDS`;
* the first fatal error is sticky: the state is BROKEN, and every later
  `handshake`, `read` and `write` raises that same object; once its alert
  has been taken, a broken core sends nothing more;
* the plaintext it reads is a prefix of what the peer wrote: a mutated
  record never reaches the application;
* it buffers no more than a bound while it waits for a ClientHello.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

import pytest
from hypothesis import event, given, note
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from lockstep import PlainSSLPeer
from pki import Pki

from wasi_tls_host.tls import CoreState, Point, TlsCore, TlsFailure
from wasi_tls_host.tls.client_hello import MAX_CLIENT_HELLO

from .fuzzing import (
    TALLY,
    CoreContract,
    fuzz_settings,
    mutate,
    mutations,
    pieces,
    split_sizes,
)

VERSIONS = ("1.2", "1.3")


# -- the pki -------------------------------------------------------------------


@dataclass
class Contexts:
    """What both ends need: the host's client context, and per version the
    peer's contexts, the core's server context, and a client leaf."""

    pki: Pki
    leaf: object = None
    client_leaf: object = None
    peer_servers: dict = field(default_factory=dict)
    peer_clients: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.leaf = self.pki.leaf("localhost")
        self.client_leaf = self.pki.leaf("client.example")
        self.host_client = self.pki.policy().client_context()
        for version in VERSIONS:
            for auth in (ssl.CERT_NONE, ssl.CERT_REQUIRED):
                self.peer_servers[version, auth] = self.pki.server_context(
                    self.leaf, version, client_auth=auth)
                self.peer_clients[version, auth] = self.pki.client_context(
                    version, self.client_leaf if auth == ssl.CERT_REQUIRED else None)


@pytest.fixture(scope="module")
def contexts(pki: Pki) -> Contexts:
    return Contexts(pki)


def core_and_peer(contexts: Contexts, role: str, version: str, client_auth: bool,
                  run_until: Point) -> tuple[TlsCore, PlainSSLPeer]:
    auth = ssl.CERT_REQUIRED if client_auth else ssl.CERT_NONE
    if role == "client":
        core = TlsCore(contexts.host_client, server_hostname="localhost", run_until=run_until)
        peer = PlainSSLPeer(contexts.peer_servers[version, auth], server_side=True)
    else:
        server_context = contexts.peer_servers[version, auth]
        core = TlsCore(lambda hello: server_context, server_side=True, run_until=run_until)
        peer = PlainSSLPeer(contexts.peer_clients[version, auth], server_side=False,
                            server_hostname="localhost")
    return core, peer


# -- the pump --------------------------------------------------------------------


@dataclass
class Plan:
    """What one example does to the conversation."""

    corrupt_at: int | None  # which transmission from the peer is mutated
    edits: list
    corrupt_back_at: int | None  # which transmission from the core is mutated
    back_edits: list
    sizes: list[int]  # how the peer's bytes are cut
    read_size: int
    payload: bytes
    stops: list[Point]  # where the handshake suspends, in turn
    eof_after: int | None  # transport EOF after this many peer transmissions
    peer_closes: bool


plans = st.builds(
    Plan,
    corrupt_at=st.one_of(st.none(), st.integers(0, 5)),
    edits=mutations,
    corrupt_back_at=st.one_of(st.none(), st.integers(0, 5)),
    back_edits=mutations,
    sizes=split_sizes,
    read_size=st.integers(1, 20_000),
    payload=st.binary(max_size=20_000),
    stops=st.lists(st.sampled_from(list(Point)), max_size=3).map(sorted),
    eof_after=st.one_of(st.none(), st.integers(0, 8)),
    peer_closes=st.booleans(),
)


class Conversation:
    """A core and an OpenSSL peer, with the plan's mutations in between."""

    def __init__(self, core: TlsCore, peer: PlainSSLPeer, plan: Plan):
        self.contract = CoreContract(core)
        self.core = core
        self.peer = peer
        self.plan = plan
        self.stops = [point for point in plan.stops if point > Point.START] + [Point.DONE]
        self.peer_failed = False
        self.peer_done = False
        self.peer_wrote = bytearray()
        self.core_read = bytearray()
        self.sent_to_core = 0
        self.sent_to_peer = 0
        self.eof_given = False

    def run(self, rounds: int = 40) -> None:
        for _ in range(rounds):
            moved = self._core_turn()
            moved |= self._peer_turn()
            if not moved and self.core.suspended_at is None:
                break
        self.contract.final_checks()
        received = bytes(self.core_read)
        assert received == bytes(self.peer_wrote[:len(received)]), (
            "the core read plaintext the peer never wrote")

    def _core_turn(self) -> bool:
        call = self.contract.call
        if self.core.suspended_at is not None and self.core.error is None:
            call("resume", self.stops.pop(0) if self.stops else Point.DONE)
        if self.core.handshake_complete:
            self._read()
            if self.core.error is None and self.core.state in (CoreState.OPEN,
                                                                 CoreState.READ_CLOSED):
                call("write", self.plan.payload[:1000])
        else:
            call("handshake")
        call("wants_ciphertext")
        call("ciphertext_pending")
        data = call("ciphertext_to_send")
        if not data:
            return False
        if self.sent_to_peer == self.plan.corrupt_back_at:
            data = mutate(data, self.plan.back_edits)
        self.sent_to_peer += 1
        if not self.peer_failed:
            self.peer.receive_ciphertext(data)
        return True

    def _read(self) -> None:
        while True:
            data = self.contract.call("read", self.plan.read_size)
            if not isinstance(data, bytes) or not data:
                return
            self.core_read += data

    def _peer_turn(self) -> bool:
        if not self.peer_failed:
            try:
                if not self.peer_done and self.peer.handshake():
                    self.peer_done = True
                    self.peer.write(self.plan.payload)
                    self.peer_wrote += self.plan.payload
                    if self.plan.peer_closes:
                        self.peer.close()
                if self.peer_done:
                    self.peer.read(65536)
            except ssl.SSLError:
                self.peer_failed = True  # its alert, if any, still goes to the core
        data = self.peer.ciphertext_to_send()
        if data and not self.eof_given:
            if self.sent_to_core == self.plan.corrupt_at:
                data = mutate(data, self.plan.edits)
            self.sent_to_core += 1
            for piece in pieces(data, self.plan.sizes):
                self.contract.call("receive_ciphertext", piece)
                self.contract.call("read_ready")
                if self.core.handshake_complete:
                    self._read()
                else:
                    self.contract.call("handshake")
        if self.plan.eof_after is not None and self.sent_to_core >= self.plan.eof_after \
                and not self.eof_given:
            self.eof_given = True
            self.contract.call("receive_eof")
            return True
        return bool(data)


@fuzz_settings(60)
@given(role=st.sampled_from(["client", "server"]), version=st.sampled_from(VERSIONS),
       client_auth=st.booleans(), plan=plans)
def test_the_core_keeps_its_contract_against_a_mutating_peer(contexts, role, version,
                                                             client_auth, plan):
    TALLY["core: conversations with a mutating OpenSSL peer"] += 1
    core, peer = core_and_peer(contexts, role, version, client_auth,
                               plan.stops[0] if plan.stops else Point.DONE)
    conversation = Conversation(core, peer, plan)
    conversation.run()
    note(f"core {core!r} error {core.error!r}")
    event(f"{role} ended {core.state}" + (f" ({core.error.kind})" if core.error else ""))


@fuzz_settings(60)
@given(role=st.sampled_from(["client", "server"]), version=st.sampled_from(VERSIONS),
       junk=st.binary(min_size=1, max_size=8192), after_hello=st.booleans(),
       sizes=split_sizes, eof=st.booleans())
def test_arbitrary_bytes_break_the_core_cleanly(contexts, role, version, junk, after_hello,
                                               sizes, eof):
    """Junk instead of the peer's flight, or (for a server) after a real ClientHello."""
    TALLY["core: arbitrary bytes"] += 1
    core, peer = core_and_peer(contexts, role, version, False, Point.DONE)
    contract = CoreContract(core)
    if role == "client":
        contract.call("handshake")
        contract.call("ciphertext_to_send")
    elif after_hello:
        peer.handshake()
        junk = peer.ciphertext_to_send() + junk
    for piece in pieces(junk, sizes):
        contract.call("receive_ciphertext", piece)
        contract.call("handshake")
        contract.call("ciphertext_to_send")
    if eof:
        contract.call("receive_eof")
        contract.call("handshake")
    contract.call("read", 1000)
    contract.final_checks()


# -- buffering before the ClientHello ----------------------------------------------

#: Most a server may hold while a ClientHello is incomplete: the largest
#: ClientHello (MAX_CLIENT_HELLO) spread one byte per record is six times
#: its size, and the record completing it may carry up to 64 KiB more.
PRE_HELLO_BOUND = 8 * MAX_CLIENT_HELLO


def retained_bytes(core: TlsCore) -> int:
    """Bytes the core holds in its buffers: every bytes-like or BIO attribute
    of the core and of the objects it keeps its inbound bytes in."""
    total = 0
    for value in (*vars(core).values(), *vars(core._inbound).values()):
        if isinstance(value, bytes | bytearray):
            total += len(value)
        elif isinstance(value, ssl.MemoryBIO):
            total += value.pending
    return total


def test_a_server_does_not_buffer_empty_records_without_bound():
    """A client that sends only zero-length handshake records (RFC 8446 §5.1
    forbids them) never completes a ClientHello; the server must refuse it,
    or at least not keep its bytes, before holding more than the bound."""
    core = TlsCore(lambda hello: ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), server_side=True)
    contract = CoreContract(core)
    empty_records = b"\x16\x03\x01\x00\x00" * (64 * 1024 // 5)
    for _ in range(2 * PRE_HELLO_BOUND // len(empty_records)):
        contract.call("receive_ciphertext", empty_records)
        if isinstance(contract.call("handshake"), TlsFailure):
            return
        assert retained_bytes(core) <= PRE_HELLO_BOUND, (
            f"{retained_bytes(core)} bytes held awaiting a ClientHello")


def test_the_largest_client_hello_in_one_byte_records_fits_the_bound():
    """The other side of the bound above: what a legitimate client may send is
    under it, and the server reads it."""
    padding = MAX_CLIENT_HELLO - 47  # what the fields below leave of the largest size
    fields = (b"\x03\x03" + bytes(32) + b"\x00"  # version, random, no session id
              + b"\x00\x02\x13\x01" + b"\x01\x00"  # one suite, no compression
              + (padding + 4).to_bytes(2, "big")  # the extensions: one unknown, padded
              + b"\xff\xff" + padding.to_bytes(2, "big") + bytes(padding))
    body = b"\x01" + len(fields).to_bytes(3, "big") + fields
    assert len(fields) == MAX_CLIENT_HELLO
    one_byte_records = b"".join(b"\x16\x03\x01\x00\x01" + body[i:i + 1] for i in range(len(body)))
    assert len(one_byte_records) <= PRE_HELLO_BOUND
    core = TlsCore(lambda hello: ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), server_side=True,
                   run_until=Point.CLIENT_HELLO)
    core.receive_ciphertext(one_byte_records)
    assert core.handshake() is False
    assert core.suspended_at == Point.CLIENT_HELLO
    assert core.client_hello.cipher_suites == (0x1301,)


# -- any order of calls ---------------------------------------------------------------


class CorePairMachine(RuleBasedStateMachine):
    """A host core and an OpenSSL peer, driven by calls in any order: the
    application's (write, read, close, abort, resume, a post-handshake
    certificate request) and the transport's (deliver, corrupt, end)."""

    def __init__(self, contexts: Contexts) -> None:
        super().__init__()
        TALLY["core: state-machine runs"] += 1
        self.contexts = contexts

    @initialize(role=st.sampled_from(["client", "server"]), version=st.sampled_from(VERSIONS),
                client_auth=st.booleans(), run_until=st.sampled_from(list(Point)))
    def start(self, role, version, client_auth, run_until):
        self.core, self.peer = core_and_peer(self.contexts, role, version, client_auth,
                                             run_until)
        self.contract = CoreContract(self.core)
        self.peer_failed = False
        self.eof = False
        self.in_flight = bytearray()  # from the peer, not yet delivered

    def _peer_step(self) -> None:
        if not self.peer_failed:
            try:
                if self.peer.handshake():
                    self.peer.read(65536)
            except ssl.SSLError:
                self.peer_failed = True
        self.in_flight += self.peer.ciphertext_to_send()

    def _call(self, name: str, *args) -> None:
        self.contract.call(name, *args)

    @rule()
    def core_sends(self):
        data = self.contract.call("ciphertext_to_send")
        if data and not self.peer_failed:
            self.peer.receive_ciphertext(data)
        self._peer_step()

    @precondition(lambda self: not self.eof)
    @rule(size=st.integers(1, 5000), edits=st.one_of(st.none(), mutations))
    def peer_delivers(self, size, edits):
        self._peer_step()
        data = bytes(self.in_flight[:size])
        del self.in_flight[:size]
        if edits is not None:
            data = mutate(data, edits)
        self._call("receive_ciphertext", data)

    @rule()
    def transport_ends(self):
        self.eof = True
        self._call("receive_eof")

    @rule()
    def handshake(self):
        self._call("handshake")

    @rule(point=st.sampled_from(list(Point)))
    def resume(self, point):
        self._call("resume", point)

    @rule(size=st.integers(1, 70_000))
    def read(self, size):
        self._call("read", size)

    @rule(data=st.binary(max_size=3000), repeat=st.integers(1, 40))
    def write(self, data, repeat):
        self._call("write", data * repeat)

    @rule()
    def close(self):
        self._call("close")

    @rule()
    def abort(self):
        self._call("abort")

    @rule()
    def request_client_certificate(self):
        self._call("request_client_certificate")

    @invariant()
    def never_raising_calls_do_not_raise(self):
        # Invariants run before the first rule too, when there is no core yet.
        if hasattr(self, "contract"):
            TALLY["core: state-machine steps"] += 1
            for name in ("wants_ciphertext", "read_ready", "ciphertext_pending"):
                self.contract.call(name)

    def teardown(self):
        if hasattr(self, "contract"):
            self.contract.final_checks()


def test_the_core_keeps_its_contract_in_any_order_of_calls(contexts):
    run_state_machine_as_test(lambda: CorePairMachine(contexts),
                              settings=fuzz_settings(40, stateful_step_count=40))


def test_the_records_fuzzed_here_are_real_tls(contexts):
    """The seeds are real: an unmutated conversation completes both ways."""
    for role in ("client", "server"):
        for version in VERSIONS:
            core, peer = core_and_peer(contexts, role, version, False, Point.DONE)
            plan = Plan(None, [], None, [], [7], 1000, b"hello", [], None, True)
            conversation = Conversation(core, peer, plan)
            conversation.run()
            assert core.error is None and core.handshake_complete
            assert bytes(conversation.core_read) == b"hello"
            assert core.version() == f"TLSv{version}"
            assert conversation.sent_to_core >= 1
