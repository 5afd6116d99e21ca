"""wasi:sockets/network: the `network` capability, error codes and addresses,
and what the host keeps per guest: its count of open sockets, and the
denied accesses it has reported.

A denied access is reported once per guest, operation and address, as a
WARNING of the ``wasi_tls_host`` logger: "denied connect to
127.0.0.1:8443 (no --allow-net grants it)". The command line prints it as a
`wasi-tls-host:` line; an embedder who configures no logging gets it on
stderr through Python's last-resort handler, since a guest refused the
network is what an operator needs to see.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import socket
import threading
import weakref
from collections.abc import Callable
from typing import Literal, Protocol, TypeVar

from .. import log
from ..config import IpAddress
from ..io.error import IoError
from ..runtime.calls import WASI_VERSION, Interface
from ..runtime.context import WasiCtx
from ..runtime.errors import ErrorValue
from ..runtime.resources import Res
from ..runtime.values import Case

T = TypeVar("T")

#: What a guest does with an address that the host's rules may deny.
NetOperation = Literal["connect", "bind", "send"]
#: Distinct denials reported per guest; a guest scanning ports gets no more.
DENIALS_REPORTED = 100


interface = Interface(f"wasi:sockets/network@{WASI_VERSION}")
interface.resource("network", Res.NETWORK)
interface.resource("error", Res.IO_ERROR)


class Network:
    """The capability to use the network; what it permits is in the host config."""


# -- what the host keeps per guest -------------------------------------------------

class Listener(Protocol):
    def stop_listening(self) -> None: ...


class GuestNetwork:
    """One guest's open sockets, counted against `HostConfig.max_connections`,
    its listeners, and the denied accesses already reported.

    Once the guest's run drains (SIGTERM), its listeners close: clients are
    refused, and `accept` says `invalid-state`, which the guest library
    takes as the end of accepting. Connections already made go on.

    Every descriptor a guest's socket holds counts: TCP sockets it creates
    (connections and listeners) or accepts, and UDP sockets. A socket's slot
    is given back when its descriptor closes, which may be after the guest
    dropped it (a dropped stream still delivering its data in the background,
    a TLS goodbye), so release may come from another thread.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.open = 0
        self._lock = threading.Lock()
        self._denied: set[tuple[str, IpAddress, int]] = set()
        self.listeners: weakref.WeakSet[Listener] = weakref.WeakSet()
        self.draining = False

    def drain(self) -> None:
        """Close every listener (on the guest's thread); later ones close at
        their first accept."""
        self.draining = True
        for listener in list(self.listeners):
            listener.stop_listening()

    def claim(self) -> SocketSlot:
        """A slot for one more socket, or the guest's `new-socket-limit`."""
        with self._lock:
            if self.open >= self.limit:
                raise fail("new-socket-limit")
            self.open += 1
        return SocketSlot(self)

    def _give_back(self) -> None:
        with self._lock:
            self.open -= 1

    def report_denied(self, operation: NetOperation, address: IpAddress, port: int) -> None:
        """Log the denial, unless this one was reported already or the guest
        has had its share of reports."""
        key = (operation, address, port)
        with self._lock:
            if key in self._denied or len(self._denied) > DENIALS_REPORTED:
                return
            self._denied.add(key)
            last = len(self._denied) > DENIALS_REPORTED
        if last:
            log.logger().warning("more denied network accesses of this guest are not reported")
            return
        where = f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
        log.logger().warning("denied %s to %s (no --allow-net grants it)", operation, where,
                             extra={"operation": operation, "address": address, "port": port})


class SocketSlot:
    """One socket's place in its guest's count, held until `release` (once)."""

    def __init__(self, owner: GuestNetwork):
        self._owner: GuestNetwork | None = owner

    def release(self) -> None:
        owner, self._owner = self._owner, None
        if owner is not None:
            owner._give_back()


_guests: weakref.WeakKeyDictionary[WasiCtx, GuestNetwork] = weakref.WeakKeyDictionary()
_guests_lock = threading.Lock()  # guests may run on threads of their own


def guest_network(ctx: WasiCtx) -> GuestNetwork:
    """The socket count of the guest `ctx` serves, made on first use."""
    with _guests_lock:
        sockets = _guests.get(ctx)
        if sockets is None:
            sockets = _guests[ctx] = GuestNetwork(ctx.config.max_connections)
            if ctx.stop is not None:
                ctx.stop.on_drain.append(sockets.drain)
        return sockets


def counted(ctx: WasiCtx, make: Callable[[SocketSlot], T]) -> T:
    """`make(slot)` a socket in a slot of the guest's count; the slot is given
    back if making it fails. `new-socket-limit` once the count is full."""
    slot = guest_network(ctx).claim()
    try:
        return make(slot)
    except BaseException:
        slot.release()
        raise


@interface.func("network-error-code")
def network_error_code(ctx: WasiCtx, error: IoError) -> str | None:
    return error.network_code


_ERRNO_CODES = {
    errno.EACCES: "access-denied",
    errno.EPERM: "access-denied",
    errno.EADDRINUSE: "address-in-use",
    errno.EADDRNOTAVAIL: "address-not-bindable",
    errno.ECONNREFUSED: "connection-refused",
    errno.ECONNRESET: "connection-reset",
    errno.EPIPE: "connection-reset",
    errno.ECONNABORTED: "connection-aborted",
    errno.ETIMEDOUT: "timeout",
    errno.EHOSTUNREACH: "remote-unreachable",
    errno.ENETUNREACH: "remote-unreachable",
    errno.ENETDOWN: "remote-unreachable",
    errno.EMSGSIZE: "datagram-too-large",
    errno.EAFNOSUPPORT: "not-supported",
    errno.EOPNOTSUPP: "not-supported",
    errno.ENOMEM: "out-of-memory",
    errno.ENOBUFS: "out-of-memory",
    errno.EMFILE: "new-socket-limit",
    errno.ENFILE: "new-socket-limit",
    errno.EINVAL: "invalid-argument",
    errno.EAGAIN: "would-block",
    errno.EINPROGRESS: "would-block",
    errno.EISCONN: "invalid-state",
    errno.ENOTCONN: "invalid-state",
}


def error_code(error: OSError) -> str:
    return _ERRNO_CODES.get(error.errno or 0, "unknown")


def fail(code: str) -> ErrorValue:
    return ErrorValue(code)


def socket_call(call: Callable[[], T]) -> T:
    """Run a socket query or option change; an OS refusal is the guest's error code."""
    try:
        return call()
    except OSError as error:
        raise fail(error_code(error)) from None


# -- addresses ---------------------------------------------------------------

FAMILIES = {"ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}


def family_name(family: int) -> str:
    return "ipv4" if family == socket.AF_INET else "ipv6"


def ip_address_value(address: IpAddress) -> Case:
    if isinstance(address, ipaddress.IPv4Address):
        return Case("ipv4", tuple(address.packed))
    packed = address.packed
    return Case("ipv6", tuple(int.from_bytes(packed[i:i + 2], "big") for i in range(0, 16, 2)))


def ip_from_value(value: Case) -> IpAddress:
    if value.tag == "ipv4":
        return ipaddress.IPv4Address(bytes(value.payload))
    return ipaddress.IPv6Address(b"".join(part.to_bytes(2, "big") for part in value.payload))


def socket_address_value(sockaddr: tuple) -> Case:
    """A Python socket address as a WIT `ip-socket-address`."""
    address = ipaddress.ip_address(sockaddr[0].split("%")[0])
    if isinstance(address, ipaddress.IPv4Address):
        return Case("ipv4", {"port": sockaddr[1], "address": ip_address_value(address).payload})
    return Case("ipv6", {"port": sockaddr[1], "flow-info": sockaddr[2],
                         "address": ip_address_value(address).payload, "scope-id": sockaddr[3]})


@functools.lru_cache(maxsize=256)
def _address_and_text(tag: str, parts: tuple[int, ...]) -> tuple[IpAddress, str]:
    # Kept: a guest names the same few addresses again and again, and
    # parsing one costs more than the system call that uses it.
    address = ip_from_value(Case(tag, parts))
    return address, str(address)


def sockaddr_from_value(value: Case) -> tuple[IpAddress, tuple]:
    """A WIT `ip-socket-address` as (ip, Python socket address)."""
    record = value.payload
    address, text = _address_and_text(value.tag, tuple(record["address"]))
    if value.tag == "ipv4":
        return address, (text, record["port"])
    # The kernel takes a 20-bit flow label; higher bits of the u32 are ignored.
    return address, (text, record["port"], record["flow-info"] & 0xFFFFF, record["scope-id"])


def check_family(address: IpAddress, family: int) -> None:
    """WASI forbids mixing families, including IPv4-mapped IPv6 addresses."""
    if family_name(family) != ("ipv4" if address.version == 4 else "ipv6"):
        raise fail("invalid-argument")
    if address.version == 6 and address.ipv4_mapped is not None:
        raise fail("invalid-argument")


_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


@functools.lru_cache(maxsize=256)
def _never_a_peer(address: IpAddress) -> bool:
    return address.is_unspecified or address.is_multicast or address == _BROADCAST


def check_remote(address: IpAddress, port: int) -> None:
    """`invalid-argument` for a peer no connection can have."""
    if port == 0 or _never_a_peer(address):
        raise fail("invalid-argument")


def permits(ctx: WasiCtx, address: IpAddress, port: int, operation: NetOperation) -> bool:
    """Whether the host's rules let the guest `operation` (connect, bind or
    send) to address:port; a denial is reported (see the module doc)."""
    if ctx.config.network_allows(address, port):
        return True
    guest_network(ctx).report_denied(operation, address, port)
    return False


def check_allowed(ctx: WasiCtx, address: IpAddress, port: int,
                  operation: NetOperation) -> None:
    """`access-denied` unless `permits` says yes."""
    if not permits(ctx, address, port, operation):
        raise fail("access-denied")


def client_bind_allowed(ctx: WasiCtx, address: IpAddress, port: int) -> bool:
    """Whether a bind is the unspecified address on an ephemeral port: what a
    UDP client does before sending. It is allowed whenever any network
    access is granted; such a socket then only hears from permitted peers."""
    return address.is_unspecified and port == 0 and ctx.config.has_network


def hop_limit_option(family: int) -> tuple[int, int]:
    """The socket option behind `hop-limit` / `unicast-hop-limit`."""
    if family == socket.AF_INET:
        return socket.IPPROTO_IP, socket.IP_TTL
    return socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS
