"""wasi:random/insecure-seed: a 128-bit seed for hash-map style randomisation."""

from __future__ import annotations

from ..runtime.calls import WASI_VERSION, Interface

interface = Interface(f"wasi:random/insecure-seed@{WASI_VERSION}")


@interface.func("insecure-seed")
def insecure_seed(ctx) -> tuple[int, int]:
    seed = ctx.config.insecure_random(16)
    return int.from_bytes(seed[:8], "little"), int.from_bytes(seed[8:], "little")
