"""wasi:io/poll: `pollable` and `poll` over any mix of host waitables."""

from __future__ import annotations

from ..runtime.calls import WASI_VERSION, Interface
from ..runtime.context import WasiCtx
from ..runtime.errors import Trap
from ..runtime.poll import Pollable
from ..runtime.resources import Res

interface = Interface(f"wasi:io/poll@{WASI_VERSION}")
interface.resource("pollable", Res.POLLABLE)


@interface.func("[method]pollable.ready")
def ready(ctx: WasiCtx, pollable: Pollable) -> bool:
    return pollable.waitable.ready()


@interface.func("[method]pollable.block")
def block(ctx: WasiCtx, pollable: Pollable) -> None:
    ctx.wait_for(pollable.waitable)


@interface.func("poll")
def poll(ctx: WasiCtx, pollables: list[Pollable]) -> list[int]:
    # Like wasmtime: an empty list is a trap; the same pollable listed twice
    # is reported at each index where it appears.
    if not pollables:
        raise Trap("poll: the list of pollables is empty")
    return ctx.wait_any([pollable.waitable for pollable in pollables])
