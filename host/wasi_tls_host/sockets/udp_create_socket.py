"""wasi:sockets/udp-create-socket."""

from __future__ import annotations

from ..runtime.calls import WASI_VERSION, Interface
from ..runtime.context import WasiCtx
from ..runtime.resources import Res
from .network import counted
from .udp import UdpSocket

interface = Interface(f"wasi:sockets/udp-create-socket@{WASI_VERSION}")
interface.resource("udp-socket", Res.UDP_SOCKET)
interface.resource("network", Res.NETWORK)


@interface.func("create-udp-socket")
def create_udp_socket(ctx: WasiCtx, address_family: str) -> UdpSocket:
    return counted(ctx, lambda slot: UdpSocket.create(address_family, slot))
