"""wasi:random/insecure: fast bytes with no security promise."""

from __future__ import annotations

from ..runtime.calls import WASI_VERSION, Interface
from ..runtime.context import WasiCtx
from .random import checked_length

interface = Interface(f"wasi:random/insecure@{WASI_VERSION}")


@interface.func("get-insecure-random-bytes")
def get_insecure_random_bytes(ctx: WasiCtx, length: int) -> bytes:
    return ctx.config.insecure_random(checked_length(length))


@interface.func("get-insecure-random-u64")
def get_insecure_random_u64(ctx: WasiCtx) -> int:
    return int.from_bytes(ctx.config.insecure_random(8), "little")
