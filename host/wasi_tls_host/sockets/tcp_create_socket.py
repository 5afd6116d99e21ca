"""wasi:sockets/tcp-create-socket."""

from __future__ import annotations

from ..runtime.calls import WASI_VERSION, Interface
from ..runtime.context import WasiCtx
from ..runtime.resources import Res
from .network import counted
from .tcp import TcpSocket

interface = Interface(f"wasi:sockets/tcp-create-socket@{WASI_VERSION}")
interface.resource("tcp-socket", Res.TCP_SOCKET)
interface.resource("network", Res.NETWORK)


@interface.func("create-tcp-socket")
def create_tcp_socket(ctx: WasiCtx, address_family: str) -> TcpSocket:
    return counted(ctx, lambda slot: TcpSocket.create(address_family, slot))
