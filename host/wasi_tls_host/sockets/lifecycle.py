"""The life cycles of TCP and UDP sockets, as data, and what both sockets share.

`TCP_TRANSITIONS` and `UDP_TRANSITIONS` are the operational semantics of
wasi:sockets: a `start-*` call moves a socket into a "started" state and the
matching `finish-*` completes it. `HostSocket.transition` is the one place a
socket's state changes. An event the table does not allow is refused with
the error code the spec gives for it (`refusal`): a `finish-*` with nothing
started is `not-in-progress`; a TCP `start-*` while another is pending is
`concurrency-conflict`; anything else is `invalid-state`.

A start is checked (`check`) before its arguments and the system call, and
applied (`transition`) only once they succeed, so a refused or failed call
leaves the state as it was, except where the spec says a failure closes the
socket (`Event.FAIL`).
"""

from __future__ import annotations

import enum
import socket
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from ..config import IpAddress
from ..runtime.context import WasiCtx
from ..runtime.poll import WaitSpec
from ..runtime.values import Case
from .network import (
    FAMILIES,
    check_family,
    error_code,
    fail,
    family_name,
    hop_limit_option,
    sockaddr_from_value,
    socket_address_value,
    socket_call,
)


class TcpState(enum.StrEnum):
    """Members compare equal to their values (`TcpSocket(sock, "connected")`)."""

    UNBOUND = "unbound"
    BIND_STARTED = "bind-started"
    BOUND = "bound"
    LISTEN_STARTED = "listen-started"
    LISTENING = "listening"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"  #: after a failed connect or listen; nothing more is possible


class UdpState(enum.StrEnum):
    UNBOUND = "unbound"
    BIND_STARTED = "bind-started"
    BOUND = "bound"


class Event(enum.StrEnum):
    START_BIND = "start-bind"
    FINISH_BIND = "finish-bind"
    START_CONNECT = "start-connect"
    FINISH_CONNECT = "finish-connect"
    START_LISTEN = "start-listen"
    FINISH_LISTEN = "finish-listen"
    FAIL = "fail"  #: a connect or listen failed: the socket is closed (the spec)


TCP_TRANSITIONS: dict[TcpState, dict[Event, TcpState]] = {
    TcpState.UNBOUND: {Event.START_BIND: TcpState.BIND_STARTED,
                       Event.START_CONNECT: TcpState.CONNECTING,
                       Event.FAIL: TcpState.CLOSED},
    TcpState.BIND_STARTED: {Event.FINISH_BIND: TcpState.BOUND},
    TcpState.BOUND: {Event.START_CONNECT: TcpState.CONNECTING,
                     Event.START_LISTEN: TcpState.LISTEN_STARTED,
                     Event.FAIL: TcpState.CLOSED},
    TcpState.LISTEN_STARTED: {Event.FINISH_LISTEN: TcpState.LISTENING},
    TcpState.LISTENING: {},
    TcpState.CONNECTING: {Event.FINISH_CONNECT: TcpState.CONNECTED,
                          Event.FAIL: TcpState.CLOSED},
    TcpState.CONNECTED: {},
    TcpState.CLOSED: {},
}

#: TCP states in which a `start-*` is pending.
TCP_IN_PROGRESS = frozenset({TcpState.BIND_STARTED, TcpState.LISTEN_STARTED,
                             TcpState.CONNECTING})

UDP_TRANSITIONS: dict[UdpState, dict[Event, UdpState]] = {
    UdpState.UNBOUND: {Event.START_BIND: UdpState.BIND_STARTED},
    UdpState.BIND_STARTED: {Event.FINISH_BIND: UdpState.BOUND},
    UdpState.BOUND: {},
}

FINISHES = frozenset({Event.FINISH_BIND, Event.FINISH_CONNECT, Event.FINISH_LISTEN})


def refusal(event: Event, state: Any, in_progress: frozenset[Any]) -> str:
    """The error code for `event` in a state whose table does not allow it."""
    if event in FINISHES:
        return "not-in-progress"
    if state in in_progress:
        return "concurrency-conflict"
    return "invalid-state"


class HostSocket:
    """A non-blocking host socket, its address family, and a state that
    changes only through `transition`, by the class's `TRANSITIONS`."""

    TRANSITIONS: ClassVar[Mapping[Any, Mapping[Event, Any]]]
    #: States in which a second `start-*` is a concurrency conflict.
    IN_PROGRESS: ClassVar[frozenset[Any]] = frozenset()
    #: States in which the socket has no local address yet.
    UNADDRESSED: ClassVar[frozenset[Any]]

    def __init__(self, sock: socket.socket, state: Any):
        self.sock = sock
        self.family = sock.family
        self.state = state

    @staticmethod
    def open(address_family: str, kind: socket.SocketKind) -> socket.socket:
        """A new non-blocking socket; an IPv6 one never carries IPv4 (WASI)."""
        try:
            sock = socket.socket(FAMILIES[address_family], kind)
        except OSError as error:
            raise fail(error_code(error)) from None
        sock.setblocking(False)
        if address_family == "ipv6":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        return sock

    # -- the state machine -------------------------------------------------
    def check(self, event: Event) -> None:
        """Refuse `event` unless the table allows it now (the state stays)."""
        if event not in self.TRANSITIONS[self.state]:
            raise fail(refusal(event, self.state, self.IN_PROGRESS))

    def transition(self, event: Event) -> None:
        """The one place the state changes."""
        self.check(event)
        self.state = self.TRANSITIONS[self.state][event]

    def require(self, *states: Any) -> None:
        if self.state not in states:
            raise fail("invalid-state")

    # -- what TCP and UDP do alike -------------------------------------------
    def address_from(self, value: Case) -> tuple[IpAddress, tuple]:
        """A guest's `ip-socket-address`, which must be of this socket's family."""
        address, sockaddr = sockaddr_from_value(value)
        check_family(address, self.family)
        return address, sockaddr

    def bind(self, sockaddr: tuple) -> None:
        """start-bind's system call; the bind has started once it succeeds."""
        socket_call(lambda: self.sock.bind(sockaddr))
        self.transition(Event.START_BIND)

    def local_address(self) -> Case:
        if self.state in self.UNADDRESSED:
            raise fail("invalid-state")
        return socket_call(lambda: socket_address_value(self.sock.getsockname()))

    def address_family(self) -> str:
        return family_name(self.family)

    def hop_limit(self) -> int:
        return socket_call(lambda: self.sock.getsockopt(*hop_limit_option(self.family)))

    def set_hop_limit(self, value: int) -> None:
        if value == 0:
            raise fail("invalid-argument")
        socket_call(lambda: self.sock.setsockopt(*hop_limit_option(self.family), value))

    def ready(self) -> bool:
        return True

    def wait_on(self) -> WaitSpec:
        return WaitSpec()


OptionGetter = Callable[[WasiCtx, HostSocket], int]
OptionSetter = Callable[[WasiCtx, HostSocket, int], None]


def socket_option(level: int, name: int, *, positive: bool = True, scale: int = 1,
                  limit: int = 0x7FFFFFFF) -> tuple[OptionGetter, OptionSetter]:
    """The host functions that get and set one socket option. A `positive`
    option refuses 0; durations are in ns and the option in units of `scale`."""
    def get(ctx: WasiCtx, owner: HostSocket) -> int:
        return socket_call(lambda: owner.sock.getsockopt(level, name) * scale)

    def set_(ctx: WasiCtx, owner: HostSocket, value: int) -> None:
        if positive and value == 0:
            raise fail("invalid-argument")
        # Round durations up so a small positive value never becomes 0.
        raw = min(max(1, -(-value // scale)) if positive else value // scale, limit)
        socket_call(lambda: owner.sock.setsockopt(level, name, raw))
    return get, set_
