"""The TCP and UDP life cycles: every event from every state, on the tables
and through the host functions on real loopback sockets.

The expected error codes are the spec's (wasi:sockets tcp.wit and udp.wit):
a `finish-*` with nothing started is `not-in-progress`, a TCP `start-*`
while another is pending is `concurrency-conflict`, anything else out of
order is `invalid-state`; a refused call leaves the state as it was.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Callable, Iterator

import pytest

from wasi_tls_host.config import HostConfig, NetRule
from wasi_tls_host.runtime.context import WasiCtx
from wasi_tls_host.runtime.errors import ErrorValue
from wasi_tls_host.runtime.values import Case
from wasi_tls_host.sockets import tcp, udp
from wasi_tls_host.sockets.lifecycle import (
    TCP_TRANSITIONS,
    UDP_TRANSITIONS,
    Event,
    TcpState,
    UdpState,
)
from wasi_tls_host.sockets.network import Network

NET = Network()
TCP_PENDING = {TcpState.BIND_STARTED, TcpState.LISTEN_STARTED, TcpState.CONNECTING}
FINISHES = {Event.FINISH_BIND, Event.FINISH_CONNECT, Event.FINISH_LISTEN}
#: Events a guest causes by a call; FAIL is the host's answer to a failed one.
GUEST_EVENTS = [event for event in Event if event is not Event.FAIL]
UDP_EVENTS = [Event.START_BIND, Event.FINISH_BIND]


def loopback(port: int = 0) -> Case:
    return Case("ipv4", {"port": port, "address": (127, 0, 0, 1)})


def expected_refusal(event: Event, state: str, pending: set) -> str:
    if event in FINISHES:
        return "not-in-progress"
    if state in pending:
        return "concurrency-conflict"
    return "invalid-state"


# -- the tables as data ---------------------------------------------------------------

@pytest.mark.parametrize(("table", "states", "start"), [
    (TCP_TRANSITIONS, TcpState, TcpState.UNBOUND),
    (UDP_TRANSITIONS, UdpState, UdpState.UNBOUND),
])
def test_every_state_has_a_row_and_is_reachable(table, states, start):
    assert set(table) == set(states)
    reached, frontier = {start}, [start]
    while frontier:
        for target in table[frontier.pop()].values():
            assert target in table
            if target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(states)


def test_only_a_failed_connect_or_listen_closes_a_tcp_socket():
    closing = {state for state, row in TCP_TRANSITIONS.items() if Event.FAIL in row}
    assert closing == {TcpState.UNBOUND, TcpState.BOUND, TcpState.CONNECTING}
    assert all(row[Event.FAIL] is TcpState.CLOSED for row in TCP_TRANSITIONS.values()
               if Event.FAIL in row)
    assert TCP_TRANSITIONS[TcpState.CLOSED] == {}


@pytest.mark.parametrize("state", list(TcpState))
@pytest.mark.parametrize("event", list(Event))
def test_tcp_transition_follows_the_table(state, event):
    with socket.socket() as raw:
        sock = tcp.TcpSocket(raw, state)
        target = TCP_TRANSITIONS[state].get(event)
        if target is None:
            with pytest.raises(ErrorValue) as refused:
                sock.transition(event)
            assert refused.value.payload == expected_refusal(event, state, TCP_PENDING)
            assert sock.state is state
        else:
            sock.transition(event)
            assert sock.state is target


@pytest.mark.parametrize("state", list(UdpState))
@pytest.mark.parametrize("event", list(Event))
def test_udp_transition_follows_the_table(state, event):
    with socket.socket(type=socket.SOCK_DGRAM) as raw:
        sock = udp.UdpSocket(raw)
        sock.state = state
        target = UDP_TRANSITIONS[state].get(event)
        if target is None:
            with pytest.raises(ErrorValue) as refused:
                sock.transition(event)
            assert refused.value.payload == expected_refusal(event, state, set())
            assert sock.state is state
        else:
            sock.transition(event)
            assert sock.state is target


# -- the host functions on real sockets -----------------------------------------------

@pytest.fixture
def ctx() -> Iterator[WasiCtx]:
    context = WasiCtx(HostConfig(allow_net=[NetRule.parse("127.0.0.1")]))
    yield context
    context.close()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server


def wait_writable(sock: tcp.TcpSocket) -> None:
    assert select.select([], [sock.sock], [], 5)[1], "connect did not complete"


def tcp_in(state: TcpState, ctx: WasiCtx, port: int) -> tcp.TcpSocket:
    """A TCP socket brought to `state` the way a guest would."""
    sock = tcp.TcpSocket.create("ipv4")
    steps: dict[TcpState, list[Callable[[], object]]] = {
        TcpState.UNBOUND: [],
        TcpState.BIND_STARTED: [lambda: tcp.start_bind(ctx, sock, NET, loopback())],
        TcpState.BOUND: [lambda: tcp.start_bind(ctx, sock, NET, loopback()),
                         lambda: tcp.finish_bind(ctx, sock)],
        TcpState.LISTEN_STARTED: [lambda: tcp.start_bind(ctx, sock, NET, loopback()),
                                  lambda: tcp.finish_bind(ctx, sock),
                                  lambda: tcp.start_listen(ctx, sock)],
        TcpState.LISTENING: [lambda: tcp.start_bind(ctx, sock, NET, loopback()),
                             lambda: tcp.finish_bind(ctx, sock),
                             lambda: tcp.start_listen(ctx, sock),
                             lambda: tcp.finish_listen(ctx, sock)],
        TcpState.CONNECTING: [lambda: tcp.start_connect(ctx, sock, NET, loopback(port))],
        TcpState.CONNECTED: [lambda: tcp.start_connect(ctx, sock, NET, loopback(port)),
                             lambda: wait_writable(sock),
                             lambda: tcp.finish_connect(ctx, sock)],
        TcpState.CLOSED: [lambda: closed_by_refusal(ctx, sock)],
    }
    for step in steps[state]:
        step()
    assert sock.state is state
    return sock


def closed_by_refusal(ctx: WasiCtx, sock: tcp.TcpSocket) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound but not listening: refused
    try:
        tcp.start_connect(ctx, sock, NET, loopback(port))
        wait_writable(sock)
        tcp.finish_connect(ctx, sock)
    except ErrorValue as refused:
        assert refused.payload == "connection-refused"
    else:
        pytest.fail("a connect to a closed port succeeded")


def fire_tcp(event: Event, ctx: WasiCtx, sock: tcp.TcpSocket, port: int) -> None:
    if event is Event.FINISH_CONNECT and sock.state is TcpState.CONNECTING:
        wait_writable(sock)
    calls: dict[Event, Callable[[], object]] = {
        Event.START_BIND: lambda: tcp.start_bind(ctx, sock, NET, loopback()),
        Event.FINISH_BIND: lambda: tcp.finish_bind(ctx, sock),
        Event.START_CONNECT: lambda: tcp.start_connect(ctx, sock, NET, loopback(port)),
        Event.FINISH_CONNECT: lambda: tcp.finish_connect(ctx, sock),
        Event.START_LISTEN: lambda: tcp.start_listen(ctx, sock),
        Event.FINISH_LISTEN: lambda: tcp.finish_listen(ctx, sock),
    }
    calls[event]()


@pytest.mark.parametrize("state", list(TcpState))
@pytest.mark.parametrize("event", GUEST_EVENTS)
def test_tcp_host_functions_walk_the_table(ctx, listener, state, event):
    port = listener.getsockname()[1]
    sock = tcp_in(state, ctx, port)
    try:
        target = TCP_TRANSITIONS[state].get(event)
        if target is None:
            with pytest.raises(ErrorValue) as refused:
                fire_tcp(event, ctx, sock, port)
            assert refused.value.payload == expected_refusal(event, state, TCP_PENDING)
            assert sock.state is state
        else:
            fire_tcp(event, ctx, sock, port)
            assert sock.state is target
    finally:
        sock.close()


def udp_in(state: UdpState, ctx: WasiCtx) -> udp.UdpSocket:
    sock = udp.UdpSocket.create("ipv4")
    if state is not UdpState.UNBOUND:
        udp.start_bind(ctx, sock, NET, loopback())
    if state is UdpState.BOUND:
        udp.finish_bind(ctx, sock)
    assert sock.state is state
    return sock


@pytest.mark.parametrize("state", list(UdpState))
@pytest.mark.parametrize("event", UDP_EVENTS)
def test_udp_host_functions_walk_the_table(ctx, state, event):
    sock = udp_in(state, ctx)
    fire = {Event.START_BIND: lambda: udp.start_bind(ctx, sock, NET, loopback()),
            Event.FINISH_BIND: lambda: udp.finish_bind(ctx, sock)}[event]
    try:
        target = UDP_TRANSITIONS[state].get(event)
        if target is None:
            with pytest.raises(ErrorValue) as refused:
                fire()
            assert refused.value.payload == expected_refusal(event, state, set())
            assert sock.state is state
        else:
            fire()
            assert sock.state is target
    finally:
        sock.close()


def test_a_refused_start_leaves_the_state_and_a_failed_listen_closes(ctx):
    sock = tcp.TcpSocket.create("ipv4")
    try:
        denied = Case("ipv4", {"port": 0, "address": (10, 0, 0, 1)})
        with pytest.raises(ErrorValue, match="access-denied"):
            tcp.start_bind(ctx, sock, NET, denied)
        assert sock.state is TcpState.UNBOUND
        tcp.start_bind(ctx, sock, NET, loopback())
        tcp.finish_bind(ctx, sock)
        sock.sock.close()  # the listen's system call now fails
        with pytest.raises(ErrorValue):
            tcp.start_listen(ctx, sock)
        assert sock.state is TcpState.CLOSED
    finally:
        sock.close()
