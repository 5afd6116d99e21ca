"""wasi:cli/environment: the arguments and variables the host grants."""

from __future__ import annotations

from ..runtime.calls import WASI_VERSION, Interface
from ..runtime.context import WasiCtx

interface = Interface(f"wasi:cli/environment@{WASI_VERSION}")


@interface.func("get-environment")
def get_environment(ctx: WasiCtx) -> list[tuple[str, str]]:
    return sorted(ctx.config.environment().items())


@interface.func("get-arguments")
def get_arguments(ctx: WasiCtx) -> list[str]:
    return list(ctx.config.args)


@interface.func("initial-cwd")
def initial_cwd(ctx: WasiCtx) -> str | None:
    return ctx.config.initial_cwd
