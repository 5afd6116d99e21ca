"""wasi:random/random: cryptographically secure bytes."""

from __future__ import annotations

from ..runtime.calls import WASI_VERSION, Interface
from ..runtime.context import WasiCtx
from ..runtime.errors import Trap

interface = Interface(f"wasi:random/random@{WASI_VERSION}")

#: One call may ask for at most this much; more is a guest bug, not a request.
MAX_RANDOM_BYTES = 64 * 1024 * 1024


def checked_length(length: int) -> int:
    if length > MAX_RANDOM_BYTES:
        raise Trap(f"asked for {length} random bytes; the limit is {MAX_RANDOM_BYTES}")
    return length


@interface.func("get-random-bytes")
def get_random_bytes(ctx: WasiCtx, length: int) -> bytes:
    return ctx.config.secure_random(checked_length(length))


@interface.func("get-random-u64")
def get_random_u64(ctx: WasiCtx) -> int:
    return int.from_bytes(ctx.config.secure_random(8), "little")
