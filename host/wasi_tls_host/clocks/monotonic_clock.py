"""wasi:clocks/monotonic-clock: nanoseconds from the host's (injectable) clock."""

from __future__ import annotations

from ..runtime.calls import WASI_VERSION, Interface
from ..runtime.context import WasiCtx
from ..runtime.poll import Deadline, Pollable
from ..runtime.resources import Res

interface = Interface(f"wasi:clocks/monotonic-clock@{WASI_VERSION}")
interface.resource("pollable", Res.POLLABLE)

RESOLUTION_NS = 1


@interface.func("now")
def now(ctx: WasiCtx) -> int:
    return ctx.now_ns()


@interface.func("resolution")
def resolution(ctx: WasiCtx) -> int:
    return RESOLUTION_NS


@interface.func("subscribe-instant")
def subscribe_instant(ctx: WasiCtx, when: int) -> Pollable:
    return Pollable(Deadline(ctx.now_ns, when))


@interface.func("subscribe-duration")
def subscribe_duration(ctx: WasiCtx, duration: int) -> Pollable:
    return Pollable(Deadline(ctx.now_ns, ctx.now_ns() + duration))
