"""wasi:sockets/instance-network: the one network handle a guest starts with."""

from __future__ import annotations

from ..runtime.calls import WASI_VERSION, Interface
from ..runtime.context import WasiCtx
from ..runtime.resources import Res
from .network import Network

interface = Interface(f"wasi:sockets/instance-network@{WASI_VERSION}")
interface.resource("network", Res.NETWORK)


@interface.func("instance-network")
def instance_network(ctx: WasiCtx) -> Network:
    return Network()
