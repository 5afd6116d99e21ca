"""wasi:random/insecure-seed: a 128-bit seed for hash-map style randomisation.

The seed is drawn once per store: it stands in for a value import, so every
call returns the same pair (as wasmtime does).
"""

from __future__ import annotations

from ..runtime.calls import WASI_VERSION, Interface
from ..runtime.context import WasiCtx

interface = Interface(f"wasi:random/insecure-seed@{WASI_VERSION}")


@interface.func("insecure-seed")
def insecure_seed(ctx: WasiCtx) -> tuple[int, int]:
    seed = ctx.random.insecure_seed
    if seed is None:
        seed = ctx.random.insecure_seed = ctx.config.insecure_random(16)
    return int.from_bytes(seed[:8], "little"), int.from_bytes(seed[8:], "little")
