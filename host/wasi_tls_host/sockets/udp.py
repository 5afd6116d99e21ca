"""wasi:sockets/udp: bind, then datagram streams, optionally fixed to one peer.

States: unbound -> bind-started -> bound (`lifecycle.UDP_TRANSITIONS`); the
datagram streams exist only on a bound socket, one pair at a time.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import socket
import struct

from ..runtime.calls import WASI_VERSION, Interface
from ..runtime.context import WasiCtx
from ..runtime.errors import Trap
from ..runtime.poll import READ, WRITE, Pollable, WaitSpec
from ..runtime.resources import Res
from ..runtime.streams import readable_now, writable_now
from ..runtime.values import Case, Child
from .lifecycle import UDP_TRANSITIONS, Event, HostSocket, UdpState, socket_option
from .network import (
    Network,
    SocketSlot,
    check_allowed,
    check_remote,
    client_bind_allowed,
    error_code,
    fail,
    socket_address_value,
    socket_call,
)

interface = Interface(f"wasi:sockets/udp@{WASI_VERSION}")
for _name, _res in (("udp-socket", Res.UDP_SOCKET), ("network", Res.NETWORK),
                    ("incoming-datagram-stream", Res.INCOMING_DATAGRAM_STREAM),
                    ("outgoing-datagram-stream", Res.OUTGOING_DATAGRAM_STREAM),
                    ("pollable", Res.POLLABLE)):
    interface.resource(_name, _res)

MAX_DATAGRAM = 65535
_libc = ctypes.CDLL(None, use_errno=True)
#: How many datagrams one `check-send` permits.
SEND_PERMIT = 64


class UdpSocket(HostSocket):
    TRANSITIONS = UDP_TRANSITIONS
    UNADDRESSED = frozenset({UdpState.UNBOUND})

    def __init__(self, sock: socket.socket, slot: SocketSlot | None = None):
        """`slot`: the socket's place in its guest's count (none for a socket
        made outside any guest's count)."""
        super().__init__(sock, UdpState.UNBOUND)
        self.slot = slot
        self.remote: tuple | None = None
        #: Bound as a client (unspecified address, any port, without a rule):
        #: datagrams from peers the guest could not send to are dropped.
        self.hears_only_permitted_peers = False
        self.streams: tuple[IncomingDatagrams, OutgoingDatagrams] | None = None

    @classmethod
    def create(cls, address_family: str, slot: SocketSlot | None = None) -> UdpSocket:
        return cls(cls.open(address_family, socket.SOCK_DGRAM), slot)

    def close(self) -> None:
        self.sock.close()
        if self.slot is not None:
            self.slot.release()


class IncomingDatagrams:
    def __init__(self, udp: UdpSocket):
        self.udp = udp

    def ready(self) -> bool:
        return readable_now(self.udp.sock.fileno())

    def wait_on(self) -> WaitSpec:
        return WaitSpec(fds=((self.udp.sock.fileno(), READ),))

    def close(self) -> None:
        self.udp.streams = None


class OutgoingDatagrams:
    def __init__(self, udp: UdpSocket):
        self.udp = udp
        self.permit = 0

    def ready(self) -> bool:
        return writable_now(self.udp.sock.fileno())

    def wait_on(self) -> WaitSpec:
        return WaitSpec(fds=((self.udp.sock.fileno(), WRITE),))

    def close(self) -> None:
        self.udp.streams = None


@interface.func("[method]udp-socket.start-bind")
def start_bind(ctx: WasiCtx, udp: UdpSocket, network: Network, local_address: Case) -> None:
    udp.check(Event.START_BIND)
    address, sockaddr = udp.address_from(local_address)
    udp.hears_only_permitted_peers = client_bind_allowed(ctx, address, sockaddr[1])
    if not udp.hears_only_permitted_peers:
        check_allowed(ctx, address, sockaddr[1], "bind")
    udp.bind(sockaddr)


@interface.func("[method]udp-socket.finish-bind")
def finish_bind(ctx: WasiCtx, udp: UdpSocket) -> None:
    udp.transition(Event.FINISH_BIND)


@interface.func("[method]udp-socket.stream")
def stream(ctx: WasiCtx, udp: UdpSocket, remote_address: Case | None) -> tuple[Child, Child]:
    udp.require(UdpState.BOUND)
    if udp.streams is not None:
        # The previous pair must be dropped first, as the spec requires.
        raise fail("invalid-state")
    if remote_address is not None:
        address, sockaddr = udp.address_from(remote_address)
        check_remote(address, sockaddr[1])
        check_allowed(ctx, address, sockaddr[1], "connect")
        socket_call(lambda: udp.sock.connect(sockaddr))
        udp.remote = sockaddr
    elif udp.remote is not None:
        socket_call(lambda: _disconnect(udp.sock))
        udp.remote = None
    udp.streams = (IncomingDatagrams(udp), OutgoingDatagrams(udp))
    return Child(udp.streams[0], udp), Child(udp.streams[1], udp)


def _disconnect(sock: socket.socket) -> None:
    """Dissolve a UDP association: connect to an AF_UNSPEC address (POSIX).

    Python's socket.connect cannot express that, so libc is called directly.
    """
    bound = sock.getsockname()
    unspecified = ctypes.create_string_buffer(struct.pack("=H", socket.AF_UNSPEC), 16)
    if _libc.connect(sock.fileno(), unspecified, len(unspecified)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    # Linux forgets an ephemeral port on disconnect; keep the one the guest
    # was given (on the unspecified address the association had replaced).
    if sock.getsockname()[1] != bound[1]:
        wildcard = "0.0.0.0" if sock.family == socket.AF_INET else "::"
        sock.bind((wildcard, *bound[1:]))


@interface.func("[method]udp-socket.local-address")
def local_address(ctx: WasiCtx, udp: UdpSocket) -> Case:
    return udp.local_address()


@interface.func("[method]udp-socket.remote-address")
def remote_address(ctx: WasiCtx, udp: UdpSocket) -> Case:
    if udp.remote is None:
        raise fail("invalid-state")
    return socket_call(lambda: socket_address_value(udp.sock.getpeername()))


@interface.func("[method]udp-socket.address-family")
def address_family(ctx: WasiCtx, udp: UdpSocket) -> str:
    return udp.address_family()


@interface.func("[method]udp-socket.unicast-hop-limit")
def unicast_hop_limit(ctx: WasiCtx, udp: UdpSocket) -> int:
    return udp.hop_limit()


@interface.func("[method]udp-socket.set-unicast-hop-limit")
def set_unicast_hop_limit(ctx: WasiCtx, udp: UdpSocket, value: int) -> None:
    udp.set_hop_limit(value)


for _wit, _opt in (("receive-buffer-size", socket.SO_RCVBUF),
                   ("send-buffer-size", socket.SO_SNDBUF)):
    _get, _set = socket_option(socket.SOL_SOCKET, _opt)
    interface.func(f"[method]udp-socket.{_wit}")(_get)
    interface.func(f"[method]udp-socket.set-{_wit}")(_set)


@interface.func("[method]udp-socket.subscribe")
def subscribe(ctx: WasiCtx, udp: UdpSocket) -> Child:
    return Child(Pollable(udp), udp)


@interface.func("[method]incoming-datagram-stream.receive")
def receive(ctx: WasiCtx, incoming: IncomingDatagrams, max_results: int) -> list[dict]:
    datagrams: list[dict] = []
    while len(datagrams) < max_results:
        try:
            data, sender = incoming.udp.sock.recvfrom(MAX_DATAGRAM)
        except BlockingIOError:
            break
        except OSError as error:
            if datagrams:
                break
            raise fail(error_code(error)) from None
        if incoming.udp.hears_only_permitted_peers and not ctx.config.network_allows(
                ipaddress.ip_address(sender[0].split("%")[0]), sender[1]):
            continue
        datagrams.append({"data": data, "remote-address": socket_address_value(sender)})
    return datagrams


@interface.func("[method]incoming-datagram-stream.subscribe")
def subscribe_incoming(ctx: WasiCtx, incoming: IncomingDatagrams) -> Child:
    return Child(Pollable(incoming), incoming)


@interface.func("[method]outgoing-datagram-stream.check-send")
def check_send(ctx: WasiCtx, outgoing: OutgoingDatagrams) -> int:
    outgoing.permit = SEND_PERMIT if outgoing.ready() else 0
    return outgoing.permit


@interface.func("[method]outgoing-datagram-stream.send")
def send(ctx: WasiCtx, outgoing: OutgoingDatagrams, datagrams: list[dict]) -> int:
    if len(datagrams) > outgoing.permit:
        raise Trap(f"send of {len(datagrams)} datagrams exceeds the {outgoing.permit} "
                   "that check-send permitted")
    outgoing.permit -= len(datagrams)
    udp = outgoing.udp
    sent = 0
    for datagram in datagrams:
        try:
            _send_one(ctx, udp, datagram)
        except BlockingIOError:
            break
        except Exception:
            if sent:
                break  # report the datagrams that went out; the next call reports the error
            raise
        sent += 1
    return sent


def _send_one(ctx: WasiCtx, udp: UdpSocket, datagram: dict) -> None:
    target = datagram["remote-address"]
    data = datagram["data"]
    if target is None:
        if udp.remote is None:
            raise fail("invalid-argument")
        sendto = None
    else:
        address, sockaddr = udp.address_from(target)
        check_remote(address, sockaddr[1])
        if udp.remote is not None and sockaddr[:2] != udp.remote[:2]:
            raise fail("invalid-argument")
        check_allowed(ctx, address, sockaddr[1], "send")
        sendto = sockaddr
    if udp.remote is not None:
        sendto = None
    try:
        if sendto is None:
            udp.sock.send(data)
        else:
            udp.sock.sendto(data, sendto)
    except BlockingIOError:
        raise
    except OSError as error:
        raise fail(error_code(error)) from None


@interface.func("[method]outgoing-datagram-stream.subscribe")
def subscribe_outgoing(ctx: WasiCtx, outgoing: OutgoingDatagrams) -> Child:
    return Child(Pollable(outgoing), outgoing)
