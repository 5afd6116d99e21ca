"""wasi:clocks/wall-clock: seconds and nanoseconds since the Unix epoch."""

from __future__ import annotations

from ..runtime.calls import WASI_VERSION, Interface
from ..runtime.context import WasiCtx

interface = Interface(f"wasi:clocks/wall-clock@{WASI_VERSION}")


def datetime(ns: int) -> dict:
    seconds, nanoseconds = divmod(ns, 1_000_000_000)
    return {"seconds": seconds, "nanoseconds": nanoseconds}


@interface.func("now")
def now(ctx: WasiCtx) -> dict:
    return datetime(ctx.config.wall_ns())


@interface.func("resolution")
def resolution(ctx: WasiCtx) -> dict:
    return datetime(1)
