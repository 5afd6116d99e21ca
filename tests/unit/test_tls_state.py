"""The core's life cycle, `TRANSITIONS`, walked state by state.

Every state is reached by a real `TlsCore` (real OpenSSL on both ends of an
in-memory lockstep pair, under TLS 1.2 and 1.3). From each, every event is
fired through the core's one place of change: a legal one leads where the
table says, any other is a `TlsFailure` of kind PROTOCOL and leaves the state
alone. Then the operations that cause events (close, fail, resume, the
peer's close_notify, the transport's end) are shown to move a core exactly
as the table says, and to do nothing where it allows nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from lockstep import flush, handshake_ok
from pki import Pki

from wasi_tls_host.tls import CoreState, ErrorKind, Point, TlsCore, TlsFailure
from wasi_tls_host.tls.state import TRANSITIONS, Event, next_state

Pair = tuple[TlsCore, TlsCore]  # (the core under test, its peer)


def fresh(pki: Pki, version: str, run_until: Point = Point.DONE) -> Pair:
    client = TlsCore(pki.policy().client_context(), server_hostname="localhost",
                     run_until=run_until)
    server = TlsCore(pki.server_context(pki.leaf("localhost"), version), server_side=True)
    return client, server


def open_pair(pki: Pki, version: str) -> Pair:
    client, server = fresh(pki, version)
    handshake_ok(client, server)
    return client, server


def suspended(pki: Pki, version: str) -> Pair:
    return fresh(pki, version, Point.START)


def awaiting_client_hello(pki: Pki, version: str) -> Pair:
    client, server = fresh(pki, version)
    return server, client


def write_closed(pki: Pki, version: str) -> Pair:
    client, server = open_pair(pki, version)
    client.close()
    return client, server


def read_closed(pki: Pki, version: str) -> Pair:
    client, server = open_pair(pki, version)
    server.close()
    flush(server, client)
    assert client.read(10) == b""
    return client, server


def truncated(pki: Pki, version: str) -> Pair:
    client, server = open_pair(pki, version)
    client.receive_eof()
    with pytest.raises(TlsFailure) as info:
        client.read(10)
    assert info.value.kind == ErrorKind.TRUNCATED
    return client, server


def closed(pki: Pki, version: str) -> Pair:
    client, server = write_closed(pki, version)
    flush(client, server)
    assert server.read(10) == b""
    server.close()
    flush(server, client)
    assert client.read(10) == b""
    return client, server


def closed_in_handshake(pki: Pki, version: str) -> Pair:
    client, server = fresh(pki, version)
    client.handshake()
    client.close()
    return client, server


def broken(pki: Pki, version: str) -> Pair:
    client, server = fresh(pki, version)
    client.fail(TlsFailure("the host gave up", kind=ErrorKind.TIMEOUT))
    return client, server


#: How a real core gets to each state.
REACH: dict[CoreState, Callable[[Pki, str], Pair]] = {
    CoreState.SUSPENDED: suspended,
    CoreState.AWAITING_CLIENT_HELLO: awaiting_client_hello,
    CoreState.HANDSHAKING: fresh,
    CoreState.OPEN: open_pair,
    CoreState.WRITE_CLOSED: write_closed,
    CoreState.READ_CLOSED: read_closed,
    CoreState.TRUNCATED: truncated,
    CoreState.CLOSED: closed,
    CoreState.CLOSED_IN_HANDSHAKE: closed_in_handshake,
    CoreState.BROKEN: broken,
}

STATES = list(CoreState)


def test_the_table_covers_every_state_and_leads_only_to_states():
    assert set(TRANSITIONS) == set(CoreState) == set(REACH)
    for row in TRANSITIONS.values():
        assert set(row) <= set(Event) and set(row.values()) <= set(CoreState)


def test_every_state_but_broken_can_fail_and_broken_is_final():
    for state, row in TRANSITIONS.items():
        if state is CoreState.BROKEN:
            assert row == {}
        else:
            assert row[Event.FAIL] is CoreState.BROKEN


def test_every_state_is_reachable_from_a_starting_state():
    starts = {CoreState.SUSPENDED, CoreState.AWAITING_CLIENT_HELLO, CoreState.HANDSHAKING}
    seen, frontier = set(starts), list(starts)
    while frontier:
        for target in TRANSITIONS[frontier.pop()].values():
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    assert seen == set(CoreState)


@pytest.mark.parametrize("state", STATES)
def test_a_real_core_reaches_the_state(pki, version, state):
    core, _peer = REACH[state](pki, version)
    assert core.state is state


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("event", list(Event))
def test_every_event_from_every_state(pki, version, state, event):
    core, _peer = REACH[state](pki, version)
    target = TRANSITIONS[state].get(event)
    if target is None:
        with pytest.raises(TlsFailure) as info:
            core._transition(event)
        assert info.value.kind == ErrorKind.PROTOCOL
        assert str(info.value) == (f"TLS core: event {event.value!r} is not allowed in state "
                                   f"{state.value!r}")
        assert core.state is state
    else:
        core._transition(event)
        assert core.state is target


def test_next_state_is_the_table():
    for state in CoreState:
        for event in Event:
            target = TRANSITIONS[state].get(event)
            if target is None:
                with pytest.raises(TlsFailure):
                    next_state(state, event)
            else:
                assert next_state(state, event) is target


@pytest.mark.parametrize("state", STATES)
def test_close_follows_the_table(pki, version, state):
    core, _peer = REACH[state](pki, version)
    core.close()
    assert core.state is TRANSITIONS[state].get(Event.CLOSE, state)


@pytest.mark.parametrize("state", STATES)
def test_fail_follows_the_table(pki, version, state):
    core, _peer = REACH[state](pki, version)
    first = core.error
    core.fail(TlsFailure("found outside the core", kind=ErrorKind.TIMEOUT))
    assert core.state is CoreState.BROKEN
    if state is CoreState.BROKEN:
        assert core.error is first  # the first failure stays
    else:
        assert str(core.error) == "found outside the core"


@pytest.mark.parametrize("state", STATES)
def test_resume_moves_only_a_suspended_core(pki, version, state):
    core, _peer = REACH[state](pki, version)
    core.resume(Point.DONE)
    expected = TRANSITIONS[state][Event.RESUME] if state is CoreState.SUSPENDED else state
    assert core.state is expected


def test_a_server_resumed_before_the_client_hello_awaits_it(pki, version):
    context = pki.server_context(pki.leaf("localhost"), version)
    server = TlsCore(context, server_side=True, run_until=Point.START)
    server.resume(Point.DONE)
    assert server.state is TRANSITIONS[CoreState.SUSPENDED][Event.AWAIT_HELLO]


# (Once the transport has ended, as in TRUNCATED, nothing more can arrive.)
@pytest.mark.parametrize("state", [CoreState.OPEN, CoreState.WRITE_CLOSED,
                                   CoreState.READ_CLOSED, CoreState.CLOSED])
def test_the_peers_close_notify_follows_the_table(pki, version, state):
    core, peer = REACH[state](pki, version)
    if not peer.close_notify_sent:
        peer.close()
    flush(peer, core)
    core.read(10)
    assert core.state is TRANSITIONS[state].get(Event.PEER_CLOSE, state)


@pytest.mark.parametrize("state", [CoreState.OPEN, CoreState.WRITE_CLOSED,
                                   CoreState.READ_CLOSED, CoreState.TRUNCATED, CoreState.CLOSED])
def test_the_transport_ending_without_close_notify_follows_the_table(pki, version, state):
    core, _peer = REACH[state](pki, version)
    core.receive_eof()
    try:
        core.read(10)
    except TlsFailure as error:
        assert error.kind == ErrorKind.TRUNCATED
    assert core.state is TRANSITIONS[state].get(Event.TRUNCATE, state)
